"""The Grafana dashboard (observability/grafana-dashboard.json) queries only what vwfcgi exports.

The dashboard is checked as Grafana imports it (valid JSON, a Prometheus data-source variable,
a model variable), then every vwfcgi_* series its PromQL names, and every label it groups or
filters by, is looked up in a live /metrics output of a stack that has seen a prediction, an
error, a vw restart and a decision + reward joined by a learning-loop model (so every counter
has a series).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, Stack, train_models

DASHBOARD = ROOT / "observability" / "grafana-dashboard.json"
DATASOURCE = "${datasource}"
NAME = re.compile(r"\bvwfcgi_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(vwfcgi_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase|changes|resets|delta|deriv)\s*\(\s*(vwfcgi_[a-z0-9_]+)")
TARGET_LABELS = {"instance", "job", "pod", "namespace", "container", "le"}  # added by Prometheus or the histogram

# "Learning loop" metrics that have no value before the first update (the policy estimate) or the
# first joined event (the logged policy's average), with their labels: they stand in for the live
# series only while the stack below has not exported them yet; a series that is exported is checked
# as it is. (test_learning.py checks them after real updates.)
LOOP_METRICS_DEFINED_AFTER_FIRST_EVENTS = {
    "vwfcgi_loop_ips_estimate": {"model"},
    "vwfcgi_loop_average_reward": {"model"},
    # Retention's first pass runs 2 s after the loop opens (issue 24).
    "vwfcgi_state_bytes": {"model", "kind"},
    "vwfcgi_state_deleted_bytes_total": {"model", "kind"},
}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside collapsed rows
    return out


def expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if var.get("type") == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def balanced(expr: str) -> bool:
    stack, quoted = [], False
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in expr:
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and not quoted


def test_dashboard_is_valid_grafana_json():
    dashboard = load()
    assert isinstance(dashboard.get("title"), str) and dashboard["title"]
    assert isinstance(dashboard.get("uid"), str) and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41, dashboard["schemaVersion"]

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    model = variables.get("model")
    assert model and model["type"] == "query", model
    query = model["query"]["query"] if isinstance(model["query"], dict) else model["query"]
    assert query == "label_values(vwfcgi_model_info, model)", query
    assert model["datasource"]["uid"] == DATASOURCE

    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (panel["title"], grid)
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]
            assert target.get("expr", "").strip(), f"empty query in {panel['title']!r}"
            assert '"$model"' in target["expr"] or "vwfcgi_uptime_seconds" in target["expr"], \
                f"{panel['title']!r} ignores the model variable: {target['expr']}"

    for expr in expressions(dashboard):
        assert balanced(expr), f"unbalanced brackets or quotes: {expr}"
        for function, name in RANGE_FUNCTION.findall(expr):
            assert name.endswith(("_total", "_bucket", "_count", "_sum")), f"{function}() over the gauge {name}: {expr}"

    # The panels the issue asks for are there.
    exprs = "\n".join(expressions(dashboard))
    for needed in ("vwfcgi_requests_total", "vwfcgi_errors_total", "vwfcgi_inflight_requests", "vwfcgi_queue_depth",
                   "vwfcgi_shard_restarts_total", "vwfcgi_model_loads_total", "vwfcgi_model_info",
                   "vwfcgi_uptime_seconds", "vwfcgi_examples_total"):
        assert needed in exprs, f"no panel queries {needed}"
    for needed in ("vwfcgi_loop_events_total", "vwfcgi_loop_joined_total", "vwfcgi_loop_pending_events",
                   "vwfcgi_loop_updates_total", "vwfcgi_loop_ips_estimate", "vwfcgi_loop_average_reward",
                   "vwfcgi_loop_learned_events"):
        assert needed in exprs, f"no panel of the Learning loop row queries {needed}"
    for q in ("0.5", "0.99"):
        assert re.search(rf"histogram_quantile\({q},\s*sum by \(model, le\) \(rate\(vwfcgi_request_duration_seconds_bucket",
                         exprs), f"no p{q} latency by model"
    assert 'code!~"2.."' in exprs, "no non-2xx share"


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory) -> dict[str, set[str]]:
    """{sample name: label names} of a live /metrics after a prediction, an error and a vw restart."""
    trained = tmp_path_factory.mktemp("dashboard-trained")
    train_models(trained)
    model_dir = tmp_path_factory.mktemp("dashboard-models")
    for name in ("logistic.vw", "logistic.json", "cb.vw"):
        shutil.copy(trained / name, model_dir / name)
    # A learning-loop model (SPEC §8): its decisions, rewards and joins have series.
    (model_dir / "cb.json").write_text(json.dumps({"input": "vw_json", "loop": {"reward_wait": "1s"}}) + "\n")
    stack = Stack(model_dir, shards=1).start()
    try:
        assert stack.predict("logistic", [" |a x0:0.5"]).status_code == 200
        assert stack.predict("logistic", ["no bar"]).status_code == 400
        context = {"U": {"u1": 1}, "_multi": [{"A": {f"a{k}": 1}} for k in range(4)]}
        r = stack.post("/v1/models/cb:rank", json={"event_id": "dash-1", "context": context})
        assert r.status_code == 200, r.text
        r = stack.post("/v1/models/cb:reward", json={"event_id": "dash-1", "reward": 1.0})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "vwfcgi_loop_joined_total{" not in stack.get("/metrics").text:
            time.sleep(0.1)
        victim = stack.get("/v1/models/logistic").json()["shards"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            shard = stack.get("/v1/models/logistic").json()["shards"][0]
            if shard["pid"] not in (None, victim) and shard["ready"] and shard["restarts"] == 1:
                break
            time.sleep(0.05)
        r = stack.get("/metrics")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.text
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    assert any(v for k, v in names.items() if k == "vwfcgi_shard_restarts_total"), names.keys()
    assert "vwfcgi_loop_joined_total" in names, sorted(names)
    for name, labels in LOOP_METRICS_DEFINED_AFTER_FIRST_EVENTS.items():
        names.setdefault(name, labels)
    return names


def test_every_metric_the_dashboard_queries_is_exported(live_metrics):
    dashboard = load()
    missing = {}
    for expr in expressions(dashboard):
        for name in set(NAME.findall(expr)):
            if name not in live_metrics:
                missing[name] = expr
    assert not missing, f"queried but not in /metrics: {missing}; exported: {sorted(live_metrics)}"


def test_every_label_the_dashboard_uses_is_exported(live_metrics):
    dashboard = load()
    problems = []
    for expr in expressions(dashboard):
        for name, matchers in SELECTOR.findall(expr):
            for label, _ in MATCHER.findall(matchers):
                if label not in live_metrics.get(name, set()):
                    problems.append(f"{name} has no label {label!r}: {expr}")
        used = set(NAME.findall(expr))
        available = set().union(*(live_metrics.get(n, set()) for n in used)) | TARGET_LABELS
        for group in GROUPING.findall(expr):
            for label in filter(None, (l.strip() for l in group.split(","))):
                if label not in available:
                    problems.append(f"grouping by {label!r}, which none of {sorted(used)} has: {expr}")
        match = re.match(r"label_values\((vwfcgi_[a-z0-9_]+),\s*(\w+)\)", expr)
        if match and match.group(2) not in live_metrics.get(match.group(1), set()):
            problems.append(f"variable query on a missing label: {expr}")
    assert not problems, "\n".join(problems)
