"""Put on PYTHONPATH by the download stage only when ``download.ssl_verify`` is false, so that
img2dataset's spawned download workers skip TLS certificate checks too (multiprocessing's
spawn does not re-import the parent's ``__main__`` package, so a patch there never reaches
them). Nothing else is changed."""

import os
import ssl

if os.environ.get("LAIONFLOW_INSECURE_SSL") == "1":
    ssl._create_default_https_context = ssl._create_unverified_context
