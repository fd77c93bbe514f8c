"""spark-submit entry point for the filter + dedup + shuffle + repartition stage.

    spark-submit spark_jobs/filter_dedup.py --config RUN/config.json [--force True] \\
      [--summary-out RUN/summaries/filter.json]

All logic lives in ``laionflow.jobs.filter``; this file only parses arguments
(``laionflow.spark.job_args``, shared by every Spark job), so the same job runs under
``local[*]``, a standalone cluster or YARN without change.
"""

import logging


def main() -> None:
    from laionflow import recipes, spark
    from laionflow.jobs.filter import run_spark

    args = spark.job_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    recipe = recipes.resolve(args.config)
    summary = run_spark(spark.spark_session(app="laionflow-filter"), recipe, force=args.force)
    spark.publish_summary(args, summary)


if __name__ == "__main__":
    main()
