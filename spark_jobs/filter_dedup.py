"""spark-submit entry point for the filter + dedup + shuffle + repartition stage.

    spark-submit spark_jobs/filter_dedup.py --config RUN/config.json [--force True] \\
      [--summary-out RUN/summaries/filter.json]

All logic lives in ``laionflow.jobs.filter``; this file only parses arguments
(``laionflow.spark.job_args``, shared by every Spark job), so the same job runs under
``local[*]``, a standalone cluster or YARN without change. A recipe with
``filter.engine: duckdb`` submitted here runs the DuckDB engine in the driver instead (the
stage table's choice holds wherever the job was launched).
"""

import logging


def main() -> None:
    from laionflow import credentials, recipes, spark
    from laionflow.jobs.filter import run_duckdb, run_spark
    from laionflow.stages import STAGES, Engine

    args = spark.job_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    recipe = recipes.resolve(args.config)
    if STAGES["filter"].engine(recipe) is Engine.DUCKDB:  # the recipe asks for it: no session
        summary = run_duckdb(recipe, force=args.force)
    else:
        # the executors' tasks read and write an S3 root themselves (the shuffle's run files)
        session = spark.spark_session(app="laionflow-filter", conf=credentials.executor_env())
        summary = run_spark(session, recipe, force=args.force)
    spark.publish_summary(args, summary)


if __name__ == "__main__":
    main()
