"""Put on PYTHONPATH by the download stage (:func:`laionflow.fetchguard.applied`), so that
img2dataset's spawned download workers fetch through the same guarded opener as the parent
(multiprocessing's spawn does not re-import the parent's ``__main__``, so a patch made there
never reaches them). Fails closed: a worker that cannot install the guard exits."""

import os

if os.environ.get("LAIONFLOW_FETCH_POLICY"):
    try:
        from laionflow import fetchguard

        fetchguard.install(fetchguard.FetchPolicy.from_env())
    except Exception as exc:  # noqa: BLE001 - any failure must stop the worker
        import sys

        print(f"laionflow: cannot install the fetch guard: {exc!r}", file=sys.stderr)
        os._exit(70)
