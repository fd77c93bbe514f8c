"""Airflow DAG for laion6m (recipe: laionflow/recipes/laion6m.yaml), two paths by Param:
prepackaged tar packs from a Hugging Face repo, or re-derived from 12m-umap metadata."""

from operators.recipe_dag import recipe_dag
from operators.repair_dag import refresh_dag

dag = recipe_dag("laion6m", prepackaged=True, recaption=True)
refresh = refresh_dag("laion6m")
