"""LAION column normalisation across metadata subsets.

Each LAION release spells its columns differently (``URL``/``TEXT`` in the 400M parquet parts,
``url``/``caption`` in the csv parts and in laion_art, ``AESTHETIC_SCORE`` vs ``aesthetic``...).
Every stage after the metadata download speaks one canonical vocabulary, so normalisation
happens exactly once, here, and an unknown column set fails before any download.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: canonical column -> Spark SQL type it is cast to (invalid values become null, then a filter
#: reason, never a crash).
CANONICAL_TYPES: dict[str, str] = {
    "url": "string",
    "caption": "string",
    "width": "int",
    "height": "int",
    "similarity": "double",
    "punsafe": "double",
    "pwatermark": "double",
    "aesthetic": "double",
    "nsfw": "string",
    "hash": "string",
    "license": "string",
    "language": "string",
    "sample_id": "string",
}

#: spellings seen in the wild, lower-cased -> canonical name
ALIASES: dict[str, str] = {
    "url": "url",
    "caption": "caption",
    "text": "caption",
    "top_caption": "caption",
    "width": "width",
    "height": "height",
    "original_width": "width",
    "original_height": "height",
    "similarity": "similarity",
    "punsafe": "punsafe",
    "pwatermark": "pwatermark",
    "aesthetic": "aesthetic",
    "aesthetic_score": "aesthetic",
    "nsfw": "nsfw",
    "hash": "hash",
    "license": "license",
    "language": "language",
    "lang": "language",
    "sample_id": "sample_id",
}

REQUIRED = ("url", "caption")


class SchemaError(ValueError):
    """The metadata columns cannot be mapped onto the canonical LAION schema."""


def column_mapping(columns: Iterable[str], overrides: Mapping[str, str] | None = None) -> dict:
    """Return ``{source_column: canonical_column}`` for the columns we know.

    ``overrides`` (from the recipe's ``columns`` section) maps a source column to a canonical
    name and wins over the built-in aliases. Unknown extra columns are dropped (they are not
    carried through img2dataset); a missing required column raises :class:`SchemaError` naming
    what was found and what was expected.
    """
    columns = list(columns)
    overrides = dict(overrides or {})
    for src, dst in overrides.items():
        if dst not in CANONICAL_TYPES:
            raise SchemaError(
                f"column override {src!r} -> {dst!r}: {dst!r} is not a canonical column "
                f"(known: {sorted(CANONICAL_TYPES)})"
            )
    mapping: dict[str, str] = {}
    for col in columns:
        canonical = overrides.get(col) or ALIASES.get(col.lower())
        if canonical is None:
            continue
        if canonical in mapping.values():
            first = next(k for k, v in mapping.items() if v == canonical)
            raise SchemaError(f"columns {first!r} and {col!r} both map to {canonical!r}")
        mapping[col] = canonical
    missing = [c for c in REQUIRED if c not in mapping.values()]
    if missing:
        raise SchemaError(
            f"metadata has no column for {missing}: found columns {columns}; expected one of "
            f"{sorted(k for k, v in ALIASES.items() if v in missing)} "
            "(or map yours in the recipe's `columns`)"
        )
    return mapping
