"""Operations (issue 11, item 6): readiness, metrics hygiene, safe staging and loading, start-up checks.

Models are small logistic ones trained by conftest; waits are bounded liveness waits, not timings.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import Stack, assert_json_error, train_small_logistic, wait_until

EXAMPLES = [" |a x:0.1 |b y:0.9", " |a x:0.7 |b y:0.2"]
CORRUPT = b"\x07\x00\x00\x00garbage" * 10


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("small") / "m.vw"
    train_small_logistic(path, 1)
    return path.read_bytes()


def gauge(text: str, name: str, model: str) -> float | None:
    m = re.search(r'^%s\{[^}]*model="%s"[^}]*\} (\S+)$' % (name, re.escape(model)), text, re.M)
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------- readiness (SPEC §5 /readyz)
def test_one_corrupt_model_does_not_make_the_pod_unready(tmp_path, small_model):
    (tmp_path / "good.vw").write_bytes(small_model)
    (tmp_path / "corrupt.vw").write_bytes(CORRUPT)
    stack = Stack(tmp_path).start()
    try:
        r = stack.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ready"] == ["good"] and body["not_ready"] == ["corrupt"], body
        metrics = stack.get("/metrics").text
        assert gauge(metrics, "vwfcgi_model_ready", "good") == 1
        assert gauge(metrics, "vwfcgi_model_ready", "corrupt") == 0
        # A corrupt file dropped later changes nothing either.
        (tmp_path / "late.vw").write_bytes(CORRUPT)
        assert wait_until(lambda: "late" in stack.get("/readyz").json()["not_ready"], 10)
        assert stack.get("/readyz").status_code == 200
        assert stack.predict("good", EXAMPLES).status_code == 200
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_readiness_all_is_strict(tmp_path, small_model):
    (tmp_path / "good.vw").write_bytes(small_model)
    (tmp_path / "corrupt.vw").write_bytes(CORRUPT)
    stack = Stack(tmp_path, extra_args=("--readiness", "all")).start(ready=False)
    try:
        assert wait_until(lambda: stack.get("/v1/models/good").json()["ready"], 30)
        r = stack.get("/readyz")
        assert_json_error(r, 503)
        assert r.headers.get("Retry-After")
        assert r.json()["not_ready"] == ["corrupt"] and r.json()["ready"] == ["good"]
        (tmp_path / "corrupt.vw").unlink()
        assert wait_until(lambda: stack.get("/readyz").status_code == 200, 10)
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_no_serving_model_is_unready(tmp_path):
    (tmp_path / "corrupt.vw").write_bytes(CORRUPT)
    stack = Stack(tmp_path).start(ready=False)
    try:
        assert wait_until(lambda: stack.get("/v1/models/corrupt").json()["last_error"], 30)
        r = stack.get("/readyz")
        assert_json_error(r, 503)
        assert r.json()["not_ready"] == ["corrupt"] and r.json()["ready"] == []
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
