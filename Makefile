# The two commands of the README. Each does its own set-up on a fresh machine and is a no-op
# for set-up when the venv is already current (stamp file newer than pyproject/constraints).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.laionflow-installed
DEMO_ROOT ?= ./demo-output
UP_ROOT ?= ./up-output
PYTEST_ARGS ?=

.PHONY: demo up test test-cluster setup lint clean check-java

setup: $(STAMP)

check-java:
	@scripts/check_java.sh

$(STAMP): pyproject.toml constraints.txt scripts/check_java.sh scripts/ensure_chromium.sh scripts/ensure_services.sh laionflow/setup/torchvision_cpu.py
	@scripts/check_java.sh
	@scripts/ensure_chromium.sh
	@scripts/ensure_services.sh
	@echo "laionflow: setting up $(VENV) (the pinned set; a few minutes, quiet unless it fails)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --disable-pip-version-check --upgrade pip setuptools wheel
	@$(PY) -m pip install -qq --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@$(PY) -m pip install -qq --disable-pip-version-check -c constraints.txt --no-deps facenet-pytorch rapidocr-onnxruntime
	@$(PY) -m laionflow.setup.torchvision_cpu >/dev/null
	@touch $@

demo: $(STAMP)
	@$(VENV)/bin/laionflow demo --root $(DEMO_ROOT)

# the Airflow UI with every recipe, offline, on 127.0.0.1 until Ctrl-C (laionflow/up.py)
up: $(STAMP)
	$(VENV)/bin/laionflow up --root $(UP_ROOT)

test: $(STAMP)
	@scripts/ensure_chromium.sh
	@scripts/ensure_services.sh
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider -m "not cluster" $(PYTEST_ARGS)

# the compose topology actually run (Postgres, Redis, Celery workers, Spark cluster, SeaweedFS;
# tests/system/test_celery_cluster.py): ~6 min on its own, kept out of `make test` so that stays
# under 30 minutes; .ci/run runs both
test-cluster: $(STAMP)
	@scripts/ensure_services.sh
	$(PY) -m pytest -q -p no:cacheprovider -m cluster $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_ROOT) $(UP_ROOT) .pytest_cache
