"""laionflow: LAION-style metadata → training-ready data, as Airflow pipelines."""

import os as _os

if _os.environ.get("LAIONFLOW_INSECURE_SSL") == "1":
    # Recipe switch download.ssl_verify=false (the SD 2.1 guide's certificate patch). Applied at
    # import so that img2dataset's spawned download workers, which import the stage's entry
    # module, inherit it; the download stage logs a loud warning when it turns this on.
    import ssl as _ssl

    _ssl._create_default_https_context = _ssl._create_unverified_context
