"""spark-submit entry point: download a run's parts with img2dataset's pyspark distributor.

    spark-submit --master spark://HOST:7077 spark_jobs/download_parts.py \\
      --config RUN/config.json [--parts 0,1] [--force True] [--summary-out PATH]

The driver runs the very ``laionflow.jobs.download.run`` of the local stage, part after part,
with ``distributor="pyspark"``: img2dataset splits each part into shards and runs one Spark
task per shard on the executors, so a part's shards download on every node at once. The
driver keeps what makes a part trustworthy — orphan clean-up, reconciliation of every input
row, the summary marker — so the output is the local run's, shard for shard.

Executors get the fetch guard through their environment (``spark.executorEnv.*``: the policy,
and the sitecustomize hook on ``PYTHONPATH`` that installs it when each Python worker starts).
"""

import hashlib
import logging
import os
import tempfile


def main() -> None:
    from laionflow import credentials, progress, recipes, spark
    from laionflow.jobs.download import executor_env
    from laionflow.stages import STAGES

    args = spark.job_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    recipe = recipes.resolve(args.config)
    parts = spark.job_parts(args)
    download = STAGES["download"].function()
    tag = hashlib.sha1(args.config.encode()).hexdigest()[:12]
    lock_dir = os.path.join(tempfile.gettempdir(), f"laionflow-domains-{tag}")
    env = executor_env(recipe, lock_dir)
    conf = {f"spark.executorEnv.{k}": v for k, v in env.items()} | credentials.executor_env()
    session = spark.spark_session(app="laionflow-download", conf=conf)
    summaries = [download(recipe, p, force=args.force, distributor="pyspark") for p in parts]
    session.stop()
    spark.publish_summary(args, progress.combined("download", summaries))


if __name__ == "__main__":
    main()
