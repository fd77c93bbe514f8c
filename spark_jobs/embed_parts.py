"""spark-submit entry point: CLIP inference over a run's parts on a Spark cluster.

    spark-submit --master spark://HOST:7077 \\
      --conf spark.executor.resource.gpu.amount=1 --conf spark.task.resource.gpu.amount=1 \\
      --conf spark.executor.resource.gpu.discoveryScript=/opt/spark/getGpusResources.sh \\
      spark_jobs/embed_parts.py --config RUN/config.json [--parts 0,1,2] [--summary-out PATH]

One Spark task per part runs the very ``laionflow.jobs.embed.run`` the local operator runs; with
GPU resource scheduling each task sees only the GPU Spark assigned to it (its address becomes
``CUDA_VISIBLE_DEVICES``), so N GPUs over M nodes share the parts. Without GPU resources the
tasks run on CPU (``clip.device: auto``). A failed task is retried by Spark and resumes from
the part's done markers.
"""

import logging
import os


def embed_part(part: int, config: str) -> dict:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    gpus = ctx.resources().get("gpu") if ctx is not None else None
    if gpus is not None and gpus.addresses:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus.addresses)
    from laionflow.recipes import resolve
    from laionflow.stages import STAGES

    return STAGES["embed"].function()(resolve(config), part)


def main() -> None:
    from laionflow import progress, spark
    from laionflow.credentials import executor_env

    args = spark.job_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parts = spark.job_parts(args)
    session = spark.spark_session(app="laionflow-embed", conf=executor_env())  # S3 roots
    config = args.config
    summaries = (
        session.sparkContext.parallelize(parts, max(1, len(parts)))
        .map(lambda p: embed_part(p, config))
        .collect()
    )
    spark.publish_summary(args, progress.combined("embed", summaries))


if __name__ == "__main__":
    main()
