"""Fetching images from the real web politely and safely: the reason vocabulary, opt-out
signals (robots.txt, TDMRep, aipref ``Content-Usage``, ``X-Robots-Tag``), per-host budgets,
DNS and whole-fetch deadlines. Airflow-free; used by the guarded opener in
:mod:`laionflow.fetchguard` inside img2dataset's download workers."""
