"""The filter stage's engine-neutral parts, shared by the Spark and the DuckDB engine.

Byte-identical parts from two engines come from two choices (see README, "Filter"):

* every semantic step is one SQL text both engines run (:mod:`.sql`): the casts of raw
  columns (strict number text, NaN -> null), the built-in checks and recipe rules (first
  failing rule wins), the seeded md5 of the dedup keys that picks a row's part and its order,
  and the input position that decides which of several duplicates is kept (the first);
* the files are written by one pyarrow writer with fixed settings (:mod:`.writer`) from
  batches the engine delivers sorted by ``(part, order, keys)``: Spark from its executors
  (``mapInArrow``), DuckDB from its result stream. Two parquet writers would never agree on
  bytes; one writer over the same rows in the same order always does.
"""
