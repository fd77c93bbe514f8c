"""One module per pipeline stage. Each exposes ``run(recipe, ...) -> dict`` (a JSON-able
summary) and imports no Airflow, so it runs the same under an operator, spark-submit, a GPU
worker or the ``laionflow run`` CLI."""
