"""The run report: plots, ledger table and dataset card, built from the stages' outputs."""
