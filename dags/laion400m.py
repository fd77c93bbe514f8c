"""Airflow DAG for the LAION-400M recipe (recipe file: laionflow/recipes/laion400m.yaml).

metadata → Spark dedup → img2dataset → annotations → CLIP → autofaiss → report.
"""

from operators.recipe_dag import recipe_dag
from operators.repair_dag import refresh_dag

dag = recipe_dag("laion400m")
refresh = refresh_dag("laion400m")
