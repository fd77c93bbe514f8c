"""Airflow DAG for the SD 2.1 base preparation (recipe: laionflow/recipes/laion2b_en_sd21.yaml).

LAION2B-en aesthetics ≥ 4.5 → ≥ 512×512, punsafe ≤ 0.98 → per-part download → annotations.
"""

from operators.recipe_dag import recipe_dag
from operators.repair_dag import refresh_dag

dag = recipe_dag("laion2b_en_sd21")
refresh = refresh_dag("laion2b_en_sd21")
