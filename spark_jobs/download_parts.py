"""spark-submit entry point: download a run's parts with img2dataset's pyspark distributor.

    spark-submit --master spark://HOST:7077 spark_jobs/download_parts.py \\
      --config RUN/config.json [--parts 0,1] [--force True]

The driver runs the very ``laionflow.jobs.download.run`` of the local stage, part after part,
with ``distributor="pyspark"``: img2dataset splits each part into shards and runs one Spark
task per shard on the executors, so a part's shards download on every node at once. The
driver keeps what makes a part trustworthy — orphan clean-up, reconciliation of every input
row, the summary marker — so the output is the local run's, shard for shard.

Executors get the fetch guard through their environment (``spark.executorEnv.*``: the policy,
and the sitecustomize hook on ``PYTHONPATH`` that installs it when each Python worker starts).
"""

import argparse
import hashlib
import json
import logging
import os
import tempfile


def main() -> None:
    from laionflow import credentials, recipes
    from laionflow.jobs import download
    from laionflow.jobs.filter import spark_session
    from laionflow.plan import selected_parts

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--parts", help="comma-separated part ids; default: the run's parts")
    parser.add_argument("--force", default="False", help="True to redo finished parts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    recipe = recipes.resolve(args.config)
    parts = [int(p) for p in args.parts.split(",")] if args.parts else selected_parts(args.config)
    tag = hashlib.sha1(args.config.encode()).hexdigest()[:12]
    lock_dir = os.path.join(tempfile.gettempdir(), f"laionflow-domains-{tag}")
    env = download.executor_env(recipe, lock_dir)
    conf = {f"spark.executorEnv.{k}": v for k, v in env.items()} | credentials.executor_env()
    spark = spark_session(app="laionflow-download", conf=conf)
    force = args.force.lower() in ("true", "1", "yes")
    summaries = [download.run(recipe, p, force=force, distributor="pyspark") for p in parts]
    spark.stop()
    print("LAIONFLOW_SUMMARY " + json.dumps({"stage": "download", "parts": summaries}))


if __name__ == "__main__":
    main()
