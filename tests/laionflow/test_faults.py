import io

import pytest
import requests
from PIL import Image

from laionflow.testing.faults import KINDS, FaultPlan
from laionflow.testing.server import FixtureServer


def test_plan_is_deterministic_per_seed_and_respects_rates():
    plan = FaultPlan({"404": 0.1, "503": 0.1, "timeout": 0.05}, seed=3)
    paths = [f"/images/{i:06d}.jpg" for i in range(4000)]
    a = [plan.assign(p) for p in paths]
    assert a == [
        FaultPlan({"404": 0.1, "503": 0.1, "timeout": 0.05}, seed=3).assign(p) for p in paths
    ]
    assert a != [
        FaultPlan({"404": 0.1, "503": 0.1, "timeout": 0.05}, seed=4).assign(p) for p in paths
    ]
    share = sum(x is not None for x in a) / len(paths)
    assert 0.22 < share < 0.28
    assert all(t is False for k, t in filter(None, a) if k == "404")  # 404 never heals
    assert plan.assign("/metadata/part-0.parquet") is None
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan({"explode": 0.1})


def _path_with(plan, kind, transient, n=5000):
    return next(
        f"/images/{i:06d}.jpg"
        for i in range(n)
        if plan.assign(f"/images/{i:06d}.jpg") == (kind, transient)
    )


def test_server_applies_each_fault_kind(tmp_path):
    img = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 10, 10)).save(img, "JPEG")
    plan = FaultPlan({k: 1 / len(KINDS) for k in KINDS}, seed=1, transient_fraction=0.5)
    with FixtureServer(tmp_path) as srv:
        srv.plan = plan
        (tmp_path / "images").mkdir()
        for i in range(400):
            (tmp_path / "images" / f"{i:06d}.jpg").write_bytes(img.getvalue())

        def get(kind, transient=False, **kw):
            return requests.get(
                srv.base_url + _path_with(plan, kind, transient, 400), timeout=kw.get("timeout", 10)
            )

        assert get("404").status_code == 404
        r = get("429", True)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert get("noai").headers["X-Robots-Tag"] == "noai"
        assert get("content_type").headers["Content-Type"] == "text/html"
        assert get("corrupt").content != img.getvalue()
        with pytest.raises(Exception):  # noqa: B017 - any PIL decoding error
            Image.open(io.BytesIO(get("corrupt").content)).load()
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(get("huge").content))
        with pytest.raises(requests.exceptions.RequestException):
            get("timeout", timeout=0.5)
        assert get("slow").content == img.getvalue()
        # a transient 503 heals after its first attempt; a permanent one never does
        healing = srv.base_url + _path_with(plan, "503", True, 400)
        assert [requests.get(healing, timeout=5).status_code for _ in range(2)] == [503, 200]
        stuck = srv.base_url + _path_with(plan, "503", False, 400)
        assert [requests.get(stuck, timeout=5).status_code for _ in range(2)] == [503, 503]
