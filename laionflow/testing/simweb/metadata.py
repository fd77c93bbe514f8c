"""LAION-like metadata parts for the simulated web, so the real pipeline can start from them.

Column names are the canonical ones of :mod:`laionflow.schema` (what the LAION csv parts and
laion_art spell); every value but ``url``, ``caption`` and ``sample_id`` is constant and passes
every recipe's filters, so a URL's outcome depends on the web alone.
"""

from __future__ import annotations

from pathlib import Path

from laionflow.testing.simweb.profiles import PATH_RE, WebSpec, _unit, web_urls

WORDS = (
    "red cat sofa mountain river city night blue car old house beach dog tree sky flower "
    "portrait vintage poster logo food bread street bridge snow forest"
).split()


def write_parts(spec: WebSpec, folder: str | Path, parts: int, port: int = 80) -> list[str]:
    """LAION-like parquet parts ``part-00000.parquet`` ... listing every URL of the web once,
    in ``web_urls`` order, with canonical column names and a unique caption per row."""
    import pandas as pd

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    urls = web_urls(spec, port)
    ids = [int(PATH_RE.match(u.path).group(2)) for u in urls]  # type: ignore[union-attr]
    words = [
        [WORDS[int(_unit(spec.seed, "caption", i, k) * len(WORDS))] for k in range(3)] for i in ids
    ]
    df = pd.DataFrame(
        {
            "url": [u.url for u in urls],
            "caption": [f"{' '.join(w)} #{i}" for w, i in zip(words, ids, strict=True)],
            "width": 256, "height": 256, "similarity": 0.5, "nsfw": "UNLIKELY",
            "punsafe": 0.01, "aesthetic": 6.0, "sample_id": ids,
        }
    )  # fmt: skip
    files = []
    for part in range(parts):
        path = out / f"part-{part:05d}.parquet"
        df.iloc[part * len(df) // parts : (part + 1) * len(df) // parts].to_parquet(
            path, index=False
        )
        files.append(str(path))
    return files
