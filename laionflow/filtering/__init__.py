"""The filter stage's engine-neutral parts, shared by the Spark and the DuckDB engine.

Byte-identical parts from two engines come from three choices (see README, "The filter's two
engines"):

* every semantic step is one SQL text (:mod:`.sql`): the casts of raw columns (strict number
  text, NaN -> null), the built-in checks and recipe rules (first failing rule wins), the
  seeded hash of the dedup keys that picks a row's part and its order, and the input position
  that decides which of several duplicates is kept (the first);
* with the shuffle, both engines run the same tasks (:mod:`.runs`): DuckDB map scans that
  split rows by part into run files, and a reduce per part; they differ only in who
  schedules them (Spark, or one process);
* the files are written by one pyarrow writer with fixed settings (:mod:`.writer`). Two
  parquet writers would never agree on bytes; one writer over the same rows in the same
  order always does.
"""
