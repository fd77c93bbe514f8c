"""The filter's semantics as SQL text that Spark SQL and DuckDB both run, so neither engine has
its own idea of a rule, a cast or a hash.

Where the engines' built-ins disagree the text says exactly what is meant instead of relying on
either's defaults: number text must match a strict pattern before it is cast (Spark and DuckDB
accept different spellings, and DuckDB rounds ``12.5`` to an int where Spark truncates);
doubles are truncated explicitly before an int cast; NaN becomes null (it would pass
``similarity >= 0.3`` in both engines' orderings); ``x / 0`` is guarded (DuckDB gives inf, ANSI
Spark raises); the kept one of several duplicates is the first in input order (an integer
position: comparing whole rows would meet each engine's own null and float ordering). In
input order (``filter.shuffle: false``) the part comes from ``md5`` of the seed and the dedup
keys, the same hex digest in both engines; the shuffle's order and part come from
:func:`order_key`, which only DuckDB computes (both engines' map tasks are DuckDB scans).
"""

from __future__ import annotations

import hashlib
import os

from laionflow.recipes import Recipe
from laionflow.schema import CANONICAL_TYPES, SchemaError, column_mapping

SPARK, DUCKDB = "spark", "duckdb"
INVALID_URL = "invalid_url"
EMPTY_CAPTION = "empty_caption"
INVALID_CAPTION = "invalid_caption"  # undecodable bytes (U+FFFD after decoding)
LONG_CAPTION = "caption_too_long"
_TYPES = {
    SPARK: {"string": "STRING", "int": "INT", "double": "DOUBLE"},
    DUCKDB: {"string": "VARCHAR", "int": "INTEGER", "double": "DOUBLE"},
}
#: number text both engines read the same way (no hex, no "inf", no "1e400")
INT_TEXT = r"[+-]?[0-9]{1,10}"
DOUBLE_TEXT = r"[+-]?([0-9]{1,300}(\.[0-9]*)?|\.[0-9]{1,300})([eE][+-]?[0-9]{1,2})?"


def needed_columns(recipe: Recipe) -> set[str]:
    """Canonical columns a source must have for the recipe's rules to mean anything (a rule
    on a missing column would silently filter every row)."""
    needed = set()
    for rule in recipe.filter.rules:
        if rule.missing == "pass" or rule.op in ("!=", "not_in"):
            continue  # nulls pass these rules: an absent column filters nothing
        needed |= {"width", "height"} if rule.column == "aspect_ratio" else {rule.column}
    return needed


def absent_columns(present: set[str], recipe: Recipe) -> list[str]:
    """Canonical columns no input file has (all null, not a dedup key): the engines leave
    them out of the sort and the exchange, and the writer writes their nulls."""
    keep = present | set(recipe.filter.dedup_keys)
    return [c for c in CANONICAL_TYPES if c not in keep]


def source_columns(
    path: str, columns: list[str], overrides: dict[str, str], needed: set[str]
) -> dict[str, str]:
    """``{canonical: source column}`` of one raw file; :class:`SchemaError` naming the file
    when a required or ``needed`` column is absent."""
    name = os.path.basename(path)
    try:
        mapping = column_mapping(columns, overrides)
    except SchemaError as err:
        raise SchemaError(f"{name}: {err}") from None
    by_canonical = {v: k for k, v in mapping.items()}
    absent = sorted(needed - set(by_canonical))
    if absent:
        raise SchemaError(
            f"{name}: the recipe's rules need column(s) {absent}, which this file lacks; "
            f"found columns {columns} (map yours in the recipe's `columns`)"
        )
    return by_canonical


def literal(value: object, dialect: str) -> str:
    """A SQL literal; Spark reads backslash escapes in string literals, DuckDB does not."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("'", "''")
    if dialect == SPARK:
        text = text.replace("\\", "\\\\")
    return f"'{text}'"


def ident(name: str, dialect: str) -> str:
    if dialect == SPARK:
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _full_match(expr: str, pattern: str, dialect: str) -> str:
    if dialect == SPARK:  # rlike is a find(); \z, unlike $, does not match before a final \n
        anchored = literal("^(?:" + pattern + r")\z", dialect)
        return f"({expr} RLIKE {anchored})"
    return f"regexp_full_match({expr}, {literal(pattern, dialect)})"


def cast_column(src: str, target: str, kind: str, dialect: str, csv: bool = False) -> str:
    """``src`` (a quoted column of ``kind`` text/int/float/other) as canonical ``target``;
    malformed values become null (then a filter reason), never a failed job."""
    typ = _TYPES[dialect][target]
    if kind == "text":
        value = f"NULLIF({src}, '')" if csv else src  # Spark's csv reader: empty is null
        if target == "string":
            return value
        trimmed = f"trim({value})"
        pattern = INT_TEXT if target == "int" else DOUBLE_TEXT
        value = f"CASE WHEN {_full_match(trimmed, pattern, dialect)} THEN {trimmed} END"
    elif kind == "float" and target == "int" and dialect == DUCKDB:
        value = f"trunc({src})"  # DuckDB rounds double -> int, Spark truncates
    else:
        value = src
    cast = f"TRY_CAST({value} AS {typ})"
    if target == "double":
        return f"(CASE WHEN isnan({cast}) THEN NULL ELSE {cast} END)"
    return cast


def normalise(
    by_canonical: dict[str, str], kinds: dict[str, str], dialect: str, csv: bool = False
) -> list[str]:
    """Select expressions giving every canonical column (null where the file lacks it)."""
    exprs = []
    for name, target in CANONICAL_TYPES.items():
        if name in by_canonical:
            src = by_canonical[name]
            expr = cast_column(ident(src, dialect), target, kinds[src], dialect, csv)
        else:
            expr = f"CAST(NULL AS {_TYPES[dialect][target]})"
        exprs.append(f"{expr} AS {name}")
    return exprs


def _rule(rule, dialect: str) -> str:
    col = rule.column
    if col == "aspect_ratio":
        col = "(greatest(width, height) / NULLIF(least(width, height), 0))"
    value = (
        "(" + ", ".join(literal(v, dialect) for v in rule.value) + ")"
        if isinstance(rule.value, list)
        else literal(rule.value, dialect)
    )
    # a missing value cannot satisfy a comparison, but is not a forbidden value either:
    # "nsfw != NSFW" keeps a row without an NSFW tag, "width >= 64" drops a row without a width
    if rule.op == "!=":
        cond = f"{col} IS DISTINCT FROM {value}"
    elif rule.op == "==":
        cond = f"{col} = {value}"
    elif rule.op == "in":
        cond = f"{col} IN {value}"
    elif rule.op == "not_in":
        cond = f"({col} IS NULL OR {col} NOT IN {value})"
    else:
        cond = f"{col} {rule.op} {value}"
    if rule.missing == "pass":
        cond = f"({col} IS NULL OR {cond})"
    return f"NOT coalesce({cond}, FALSE)"


def _checks(recipe: Recipe) -> list[tuple[str, str]]:
    """``(condition that fails a row, reason)`` in the order they are tried."""
    bad = "\ufffd"
    u = "url"
    valid_url = (
        f"coalesce(((lower(substr({u}, 1, 7)) = 'http://' AND length({u}) > 7) "
        f"OR (lower(substr({u}, 1, 8)) = 'https://' AND length({u}) > 8)) "
        f"AND NOT contains({u}, ' ') AND NOT contains({u}, chr(9)) "
        f"AND NOT contains({u}, chr(10)) AND NOT contains({u}, '{bad}'), FALSE)"
    )
    return [
        (f"NOT {valid_url}", INVALID_URL),
        ("coalesce(length(trim(caption)) = 0, TRUE)", EMPTY_CAPTION),
        (f"contains(caption, '{bad}')", INVALID_CAPTION),
        (f"length(caption) > {recipe.filter.max_caption_chars}", LONG_CAPTION),
    ]


def reason(recipe: Recipe, dialect: str) -> str:
    """``NULL`` for a row that passes every check and rule (the recipe's resolved rules, in
    order), else the name of the first one it fails."""
    whens = _checks(recipe) + [(_rule(rule, dialect), rule.name) for rule in recipe.filter.rules]
    body = " ".join(f"WHEN {cond} THEN {literal(name, dialect)}" for cond, name in whens)
    return f"CASE {body} END"


def key_digest(recipe: Recipe) -> str:
    """Hex md5 of the seed and the dedup keys (null-aware, unambiguous per key kind): a row's
    part in input order (``filter.shuffle: false``). Same text, same digest, in both
    engines."""
    return f"md5({_digested(recipe)})"


def _digested(recipe: Recipe) -> str:
    cfg = recipe.filter
    parts = [literal(str(cfg.seed), DUCKDB)]
    for key in cfg.dedup_keys:
        parts.append(f"coalesce('v' || CAST({key} AS STRING), 'n')")
    return f"concat_ws(chr(31), {', '.join(parts)})"


def order_key(recipe: Recipe) -> str:
    """DuckDB: a passing row's order value, 60 bits as a non-negative BIGINT: where it sorts
    in its part and (its top 32 bits modulo the parts) which part it goes to.

    DuckDB's own ``hash`` of the dedup keys, mixed with the seed by a second ``hash`` (of a
    number: a full avalanche, so two seeds give unrelated orders and parts). It costs a
    tenth of an md5 of the keys' text (10M-row bench: the map side 2.7 cpu-seconds less),
    but it is DuckDB's, defined by its version: :func:`order_function` names it, and the
    map tasks of one run must agree on it (a mixed cluster would split duplicates across
    parts). Equal orders with different keys are handled exactly by the reduce."""
    keys = ", ".join(recipe.filter.dedup_keys)
    mix = int.from_bytes(hashlib.md5(str(recipe.filter.seed).encode()).digest()[:8], "big")
    return f"CAST(hash(xor(hash({keys}), {mix}::UBIGINT)) >> 4 AS BIGINT)"


def order_function() -> str:
    """What :func:`order_key` is computed by: DuckDB's ``hash`` of this DuckDB version."""
    import duckdb

    return f"duckdb-hash-{duckdb.__version__}"


def part_of(digest: str, num_parts: int, dialect: str) -> str:
    """The part of a row: the digest's first 32 bits modulo the number of parts."""
    head = f"substr({digest}, 1, 8)"
    if dialect == SPARK:
        return f"CAST(pmod(CAST(conv({head}, 16, 10) AS BIGINT), {num_parts}) AS INT)"
    return f"CAST(CAST('0x' || {head} AS BIGINT) % {num_parts} AS INTEGER)"


def first_row(columns: list[str], dialect: str) -> list[str]:
    """Aggregates picking, among duplicates, the values of the first one in input order (file
    order, then row order within the file): DuckDB's ``_pos`` is the file's row number, Spark's
    ``(_blk, _pos)`` the split's start and the row's id within it. Each aggregate is named like
    its column; ``_first`` is the kept row's position (the order when the shuffle is off)."""
    key = position(dialect)
    if dialect == SPARK:
        return [f"min_by({c}, {key}) AS {c}" for c in columns] + [f"min({key}) AS _first"]
    return [f"arg_min({c}, {key}) AS {c}" for c in columns] + [f"min({key}) AS _first"]


def position(dialect: str) -> str:
    """A row's input position, ordered as file order then row order (unique per row)."""
    if dialect == SPARK:
        return "named_struct('s', _src, 'b', _blk, 'p', _pos)"
    return "(_src * 1099511627776 + _pos)"  # 2^40 rows per file
