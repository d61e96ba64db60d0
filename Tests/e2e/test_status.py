"""Status endpoints through nginx (SPEC §5): /v1/models, /v1/models/<name>, /healthz, /readyz, /metrics."""

import re
from datetime import datetime

from conftest import SHARDS, descendants, model_version

MODELS = {"logistic": (["--link", "logistic"], False), "oaa": ([], False), "cb": ([], True)}


def check_status(status: dict, name: str, stack) -> None:
    vw_args, multiline = MODELS[name]
    assert status["name"] == name
    assert status["ready"] is True
    assert status["version"] == model_version(stack.model_dir, name)
    # RFC 3339 time
    loaded_at = status["loaded_at"]
    assert isinstance(loaded_at, str)
    datetime.fromisoformat(loaded_at.replace("Z", "+00:00"))
    assert status["vw_args"] == vw_args
    assert status["multiline"] is multiline
    assert status["last_error"] is None
    shards = status["shards"]
    assert isinstance(shards, list) and len(shards) == SHARDS, shards
    vw_pids = descendants(stack.vwfcgi.pid)
    for shard in shards:
        assert {"pid", "ready", "restarts", "inflight"} <= set(shard), shard
        assert type(shard["pid"]) is int and shard["pid"] in vw_pids, f"shard pid {shard['pid']} is not a vw child"
        assert shard["ready"] is True
        assert type(shard["restarts"]) is int and shard["restarts"] >= 0
        assert type(shard["inflight"]) is int and shard["inflight"] >= 0
    assert len({s["pid"] for s in shards}) == SHARDS


def test_list_models_shows_all_three_ready(stack):
    r = stack.get("/v1/models")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    models = {m["name"]: m for m in r.json()["models"]}
    assert set(models) == set(MODELS)
    for name, status in models.items():
        check_status(status, name, stack)


def test_model_status_has_every_field(stack):
    for name in MODELS:
        r = stack.get(f"/v1/models/{name}")
        assert r.status_code == 200, r.text
        check_status(r.json(), name, stack)


def test_healthz_alive(stack):
    r = stack.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}


def test_readyz_ready_when_every_model_serves(stack):
    r = stack.get("/readyz")
    assert r.status_code == 200, r.text


def test_metrics_prometheus_text(stack, canary):
    lines, _ = canary
    assert stack.predict("logistic", lines).status_code == 200
    r = stack.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    for name in ("vwfcgi_requests_total", "vwfcgi_request_duration_seconds", "vwfcgi_examples_total",
                 "vwfcgi_model_loads_total", "vwfcgi_shard_restarts_total", "vwfcgi_inflight_requests",
                 "vwfcgi_model_info"):
        assert name in text, f"{name} missing from /metrics"
    m = re.search(r'^vwfcgi_examples_total\{[^}]*model="logistic"[^}]*\} (\S+)$', text, re.M)
    assert m and float(m.group(1)) >= len(lines), "vwfcgi_examples_total{model=\"logistic\"} not counted"
    version = model_version(stack.model_dir, "logistic")
    assert re.search(r'^vwfcgi_model_info\{[^}]*version="%s"' % version, text, re.M), "model_info lacks version"
