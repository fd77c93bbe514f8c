import subprocess
import sys
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_dag_folder_parses_without_errors(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=str(DAGS), bundle_name="dags-folder")
    assert bag.import_errors == {}
    assert {"laion400m", "laion2b_en_sd21", "laion6m", "laionflow_repair"} <= set(bag.dag_ids)


def test_laion400m_shape():
    from laionflow.embedded import load_dag

    dag = load_dag("laion400m")
    assert set(dag.task_ids) == {
        "plan",
        "metadata_available",
        "metadata",
        "filter",
        "estimate",
        "parts",
        "download",
        "annotate",
        "embed",
        "scores",
        "blur",
        "score_filter",
        "index",
        "semdedup",
        "report",
    }
    t = dag.task_dict
    assert t["scores"].upstream_task_ids >= {"embed"} and t["scores"].pool == "gpu"
    assert t["index"].upstream_task_ids >= {"score_filter"}
    assert t["report"].upstream_task_ids >= {"semdedup"}
    assert t["plan"].downstream_task_ids >= {"metadata"}
    assert t["filter"].upstream_task_ids == {"metadata", "plan"}
    assert t["metadata_available"].mode == "reschedule"
    assert t["metadata_available"].downstream_task_ids == {"metadata"}
    assert t["download"].upstream_task_ids == {"plan", "parts", "estimate"}
    assert "parts" in t["filter"].downstream_task_ids
    assert t["embed"].pool == "gpu" and t["filter"].pool == "spark"
    for name in ("metadata", "download"):
        assert t[name].retries >= 3 and t[name].retry_exponential_backoff
    assert t["download"].partial_kwargs["map_index_template"].startswith("part_")
    assert {
        "root",
        "metadata_urls",
        "part_ids",
        "image_size",
        "output_format",
        "clip_model",
        "clip_pretrained",
        "device",
    } <= set(dag.params)


HEAVY = (
    "torch",
    "pyspark",
    "img2dataset",
    "open_clip",
    "faiss",
    "pandas",
    "laionflow.jobs",
    "laionflow.recipes",
)
PROBE = """
import importlib.util, sys
sys.path.insert(0, {root!r})
for f in {files!r}:
    spec = importlib.util.spec_from_file_location(f, f)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print([m for m in {heavy!r} if m in sys.modules])
"""


def test_dag_files_import_nothing_heavy():
    files = [str(p) for p in sorted(DAGS.glob("*.py"))]
    code = PROBE.format(root=str(DAGS.parent), files=files, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_inference_engine_setting_moves_embed_to_a_spark_gpu_job(monkeypatch):
    from operators.recipe_dag import recipe_dag
    from operators.spark import LaionflowSparkSubmitOperator
    from operators.stage import LaionflowStageOperator

    local = recipe_dag("laion400m").get_task("embed")
    assert local.operator_class is LaionflowStageOperator or isinstance(
        local, LaionflowStageOperator
    )
    monkeypatch.setenv("LAIONFLOW_EMBED_ENGINE", "spark")
    monkeypatch.setenv("LAIONFLOW_SPARK_GPUS_PER_EXECUTOR", "4")
    monkeypatch.setenv("LAIONFLOW_SPARK_GPU_DISCOVERY", "/opt/spark/getGpusResources.sh")
    task = recipe_dag("laion400m").get_task("embed")
    assert isinstance(task, LaionflowSparkSubmitOperator) and task.job == "embed_parts.py"
    assert task.pool == "gpu"
    assert task.conf["spark.task.resource.gpu.amount"] == "1"
    assert task.conf["spark.executor.resource.gpu.amount"] == "4"
    assert "getGpusResources.sh" in task.conf["spark.executor.resource.gpu.discoveryScript"]


def test_download_engine_setting_moves_the_download_to_spark(monkeypatch):
    from operators.recipe_dag import recipe_dag
    from operators.spark import LaionflowSparkSubmitOperator

    assert recipe_dag("laion400m").get_task("download").is_mapped
    monkeypatch.setenv("LAIONFLOW_DOWNLOAD_ENGINE", "spark")
    monkeypatch.setenv("LAIONFLOW_DOWNLOAD_SPARK_CONN", "spark_cluster")
    dag = recipe_dag("laion400m")
    task = dag.get_task("download")
    assert isinstance(task, LaionflowSparkSubmitOperator) and task.job == "download_parts.py"
    assert task._conn_id == "spark_cluster" and task.pool == "spark" and task.retries == 3
    assert {t.task_id for t in task.upstream_list} >= {"parts", "estimate"}
    assert "annotate" in {t.task_id for t in task.downstream_list}
