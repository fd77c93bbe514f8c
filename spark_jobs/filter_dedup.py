"""spark-submit entry point for the filter + dedup + shuffle + repartition stage.

    spark-submit spark_jobs/filter_dedup.py --config RUN/config.json [--force True]

All logic lives in ``laionflow.jobs.filter``; this file only parses arguments, so the same
job runs under ``local[*]``, a standalone cluster or YARN without change.
"""

import argparse
import json
import logging


def main() -> None:
    from laionflow import recipes
    from laionflow.jobs.filter import run_spark, spark_session

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--force", default="False", help="True to redo a finished filter")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    recipe = recipes.resolve(args.config)
    force = args.force.lower() in ("true", "1", "yes")
    summary = run_spark(spark_session(app="laionflow-filter"), recipe, force=force)
    print("LAIONFLOW_SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
