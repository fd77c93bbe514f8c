"""laionflow: LAION-style metadata → training-ready data, as Airflow pipelines."""
