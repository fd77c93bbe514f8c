"""The trigger form as one table: each Param, the recipe field it sets, how it is shown and
what it accepts. The recipe DAGs' Params (``operators/params.py``), the repair DAG's, and
:mod:`laionflow.plan` (Param → recipe field) all read this table, so adding a Param is one row.

Limits, enums and the schema's own defaults are those of the recipe schema
(``laionflow/recipes/schema.py``); ``tests/laionflow/test_form.py`` checks every row against
it. They are written here rather than read from the schema because DAG files must not import
the recipe package at parse time (``tests/dags/test_dag_files.py``): each recipe DAG's form
shows the values a run will use (:func:`recipe_form`, in :mod:`laionflow.form_values`) from
the recipe's YAML and the site defaults read as plain data. No Airflow import:
``operators/params.py`` makes the Params.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

#: sizes: a number and an optional unit; k/M/G/T/P (with or without B) are powers of 1000,
#: KiB/MiB/GiB/TiB/PiB powers of 1024 — the same text the form's pattern accepts
SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    **{p: 1000**i for i, p in enumerate("kmgtp", 1)},
    **{f"{p}b": 1000**i for i, p in enumerate("kmgtp", 1)},
    **{f"{p}ib": 1024**i for i, p in enumerate("kmgtp", 1)},
}  # fmt: skip
SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*([bB]|[kKmMgGtTpP]([iI]?[bB])?)?\s*$"


def parse_size(value: Any) -> int | None:
    """``"2TB"`` → ``2_000_000_000_000``; ``"1.5 GiB"``, ``"500M"``, ``"1000"`` and plain
    non-negative integers too; ``None``/``""`` → ``None`` (no limit). Raises ``ValueError``
    naming the text otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"size {value!r}: expected bytes or text like '2TB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size {value}: must not be negative")
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    unit = match.group(2).lower() if match else None
    if unit not in SIZE_UNITS:
        raise ValueError(f"size {value!r}: expected bytes or text like '2TB', '500GB', '1.5TiB'")
    try:
        return int(Decimal(match.group(1)) * SIZE_UNITS[unit])
    except InvalidOperation:  # pragma: no cover - the regex admits only decimal numbers
        raise ValueError(f"size {value!r}: not a number") from None


@dataclass(frozen=True)
class Row:
    """One Param. ``field``: the dotted recipe field it sets (None for run controls and
    thresholds); ``rules``: the filter rules whose value a threshold Param sets; ``schema``:
    JSON-schema limits (``minimum``, ``maximum``, ``enum``, ``items``, ``pattern``); ``kind``
    ``size``: bytes as an integer or text like ``2TB`` (:func:`parse_size`)."""

    param: str
    field: str | None
    kind: str
    title: str
    description: str
    section: str
    schema: dict[str, Any] = field(default_factory=dict)
    default: Any = None
    rules: tuple[str, ...] = ()

    def json_schema(self) -> dict[str, Any]:
        """Keyword arguments of the Airflow Param (without the default). An enum, a switch or
        a run control with a default accepts only its kind, so it shows the value a run gets
        (never ``null`` or an *off* switch standing for "the recipe's"); any other Param also
        accepts null — emptied, it means "the recipe's value"."""
        strict = self.default is not None and (
            self.kind == "boolean" or "enum" in self.schema or not (self.field or self.rules)
        )
        kinds = ["string", "integer"] if self.kind == "size" else [self.kind]
        extra = dict(self.schema)
        if "enum" in extra and not strict:
            extra["enum"] = [None, *extra["enum"]]
        types = kinds if strict else ["null", *kinds]
        return {
            "type": types[0] if len(types) == 1 else types,
            "title": self.title,
            "description_md": self.description,
            "section": self.section,
            **extra,
        }


def _enum(*values: str) -> dict[str, Any]:
    return {"enum": list(values)}


RECIPE_FORM: tuple[Row, ...] = (
    Row("root", "root", "string", "Dataset root",
        "Parent folder or `s3://bucket/prefix`; the dataset is written to `ROOT/<recipe>`. "
        "Empty: the recipe's `root`.", "Where"),
    Row("metadata_urls", "metadata.urls", "array", "Metadata URLs",
        "Metadata parts to fetch (`https://...`, `hf://datasets/OWNER/NAME/GLOB`; braces "
        "expand, e.g. `part_{1..64}.parquet`). Empty: the recipe's.", "Where",
        {"items": {"type": "string"}}),
    Row("part_ids", "part_ids", "array", "Part ids",
        "Only download/embed these parts (backfill by part id), e.g. `[3, 4, 7]`. "
        "Empty: every part.", "Where", {"items": {"type": "integer", "minimum": 0}}),
    Row("num_parts", "filter.num_parts", "integer", "Number of parts",
        "Output parts after the shuffle.", "Filter", {"minimum": 1, "maximum": 100_000}),
    Row("image_size", "download.image_size", "integer", "Image size",
        "img2dataset `image_size` in pixels.", "Images", {"minimum": 8, "maximum": 8192}),
    Row("resize_mode", "download.resize_mode", "string", "Resize mode",
        "img2dataset `resize_mode`.", "Images",
        _enum("no", "border", "keep_ratio", "keep_ratio_largest", "center_crop")),
    Row("output_format", "download.output_format", "string", "Output format",
        "Shard format written by img2dataset.", "Images",
        _enum("webdataset", "files", "parquet", "tfrecord")),
    Row("processes", "download.processes", "integer", "Download processes",
        "img2dataset `processes_count`.", "Images", {"minimum": 1}),
    Row("threads", "download.threads", "integer", "Download threads",
        "img2dataset `thread_count`.", "Images", {"minimum": 1}),
    Row("ssl_verify", "download.ssl_verify", "boolean", "Verify TLS certificates",
        "Set to false to skip certificate checks (the SD 2.1 guide's patch for hosts with "
        "broken chains). Logged loudly when off.", "Images"),
    Row("clip_model", "clip.model", "string", "CLIP model",
        "Any open_clip model name, e.g. `ViT-B-32`.", "CLIP"),
    Row("clip_pretrained", "clip.pretrained", "string", "CLIP weights",
        "open_clip pretrained tag (e.g. `laion400m_e32`) or a local checkpoint path.", "CLIP"),
    Row("device", "clip.device", "string", "Device", "`auto` uses CUDA when present.", "CLIP",
        _enum("auto", "cpu", "cuda")),
    Row("min_image_size", None, "integer", "Minimum width and height",
        "Threshold of the recipe's `min_width`/`min_height` rules (pixels, from the metadata).",
        "Filter", {"minimum": 0}, rules=("min_width", "min_height")),
    Row("min_similarity", None, "number", "Minimum CLIP similarity",
        "Threshold of the `min_similarity` rule.", "Filter", {"minimum": 0, "maximum": 1},
        rules=("min_similarity",)),
    Row("max_punsafe", None, "number", "Maximum punsafe",
        "Threshold of the `max_punsafe` rule (probability of unsafe).", "Filter",
        {"minimum": 0, "maximum": 1}, rules=("max_punsafe",)),
    Row("min_aesthetic", None, "number", "Minimum aesthetic score",
        "Threshold of the `min_aesthetic` rule.", "Filter", {"minimum": 0, "maximum": 10},
        rules=("min_aesthetic",)),
    Row("max_aspect_ratio", None, "number", "Maximum aspect ratio",
        "Threshold of the `max_aspect_ratio` rule (long side / short side).", "Filter",
        {"minimum": 1}, rules=("max_aspect_ratio",)),
    Row("max_output_bytes", None, "size", "Maximum output size",
        "Stop before downloading when the estimated output is larger: bytes or text such as "
        "`2TB`, `500GB`, `1.5TiB` (k/M/G/T: powers of 1000; KiB/GiB/TiB: of 1024). "
        "Empty: no limit.", "Run", {"pattern": SIZE_PATTERN, "minimum": 0}),
    Row("dry_run", None, "boolean", "Dry run",
        "Fetch and filter the metadata, print the storage/time estimate, and stop "
        "before downloading images.", "Run", default=False),
    Row("force", None, "boolean", "Force", "Redo stages whose outputs already exist.", "Run",
        default=False),
    Row("overrides", None, "object", "Recipe overrides",
        'Any recipe field by dotted path, e.g. `{"download.number_sample_per_shard": 1000}`.',
        "Run", default={}),
)  # fmt: skip

#: extra Params of recipes distributed as tar packs (laion6m)
PREPACKAGED_FORM: tuple[Row, ...] = (
    Row("source", "source", "string", "Source",
        "`prepackaged`: fetch and extract the published tar packs; "
        "`rederive`: filter the metadata and download the images.", "Where",
        _enum("rederive", "prepackaged")),
    Row("pack_start", "prepackaged.start", "integer", "First pack",
        "Extract packs from this index (sorted), inclusive.", "Where", {"minimum": 0}),
    Row("pack_end", "prepackaged.end", "integer", "End pack", "...up to this index, exclusive.",
        "Where", {"minimum": 0}),
    Row("extract_workers", "prepackaged.workers", "integer", "Extraction workers",
        "Parallel extraction processes.", "Where", {"minimum": 1}),
)  # fmt: skip

ROWS: dict[str, Row] = {r.param: r for r in (*RECIPE_FORM, *PREPACKAGED_FORM)}
#: Param -> dotted recipe field
PARAM_FIELDS: dict[str, str] = {r.param: r.field for r in ROWS.values() if r.field}
#: threshold Param -> the recipe rules whose value it sets
THRESHOLD_RULES: dict[str, tuple[str, ...]] = {r.param: r.rules for r in ROWS.values() if r.rules}
#: Params that steer the run rather than the recipe
CONTROL_PARAMS: frozenset[str] = frozenset(
    r.param for r in ROWS.values() if not r.field and not r.rules
)
