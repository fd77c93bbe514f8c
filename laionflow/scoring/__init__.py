"""Per-sample model scores (dataset2metadata style): YAML config and model registry."""
