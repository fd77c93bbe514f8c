"""Airflow DAG: scheduled repair of every recipe's downloads (see operators/repair_dag.py)."""

from operators.repair_dag import repair_dag

dag = repair_dag()
