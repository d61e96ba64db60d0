"""Observability (issue 5): GET /metrics counts what vwfcgi answered, and the logs are JSON lines.

Every test runs its own stack on its own model directory, so its counters start from a known
state. Counts are compared as differences between two scrapes: Stack.start polls /healthz and
/readyz, and each /metrics scrape is itself counted (after its own exposition). Every scrape is
parsed with prometheus_client's parser, the one Prometheus' Python ecosystem uses.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import train_small_logistic, wait_until, Stack, cb_example, model_version, train_models

BOUND = 15.0  # liveness bound for "the server got there", never a performance assertion
EXAMPLES = [f" |a x:{x / 10:.1f} |b y:{(9 - x) / 10:.1f}" for x in range(10)]


# ---------------------------------------------------------------- scraping
class Scrape:
    """One parsed /metrics exposition: {(sample name, sorted label pairs): value}."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, tuple], float] = {}
        for family in self.families.values():
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.samples, f"duplicate sample {key} in /metrics"
                self.samples[key] = s.value

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def series(self, name: str, **match) -> dict[tuple, float]:
        """Samples of `name` whose labels include `match`, keyed by their label pairs."""
        out = {}
        for (n, labels), value in self.samples.items():
            d = dict(labels)
            if n == name and all(d.get(k) == v for k, v in match.items()):
                out[labels] = value
        return out

    def total(self, name: str, **match) -> float:
        return sum(self.series(name, **match).values())

    def by(self, name: str, label: str, **match) -> Counter:
        """Sum of `name` grouped by one label (zeros left out)."""
        out: Counter = Counter()
        for labels, value in self.series(name, **match).items():
            if value:
                out[dict(labels).get(label)] += value
        return out


def scrape(stack: Stack) -> Scrape:
    r = stack.get("/metrics")
    assert r.status_code == 200, f"/metrics answered {r.status_code}: {r.text[:300]!r}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain"), f"/metrics Content-Type is {ctype!r}"
    return Scrape(r.text)


def delta(after: Counter, before: Counter) -> Counter:
    out = Counter({k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)})
    return Counter({k: v for k, v in out.items() if v})


def wait_for(predicate, bound: float = BOUND, step: float = 0.05):
    return wait_until(predicate, bound, step)


def check_histogram_matches_requests(s: Scrape) -> None:
    """One latency observation per counted request, per model and in total; buckets cumulative."""
    requests_by_model = s.by("vwfcgi_requests_total", "model")
    count_by_model = s.by("vwfcgi_request_duration_seconds_count", "model")
    assert count_by_model == requests_by_model, (
        f"histogram _count by model {dict(count_by_model)} != requests_total by model {dict(requests_by_model)}")
    family = s.families["vwfcgi_request_duration_seconds"]
    assert family.type == "histogram", family.type
    for labels, count in s.series("vwfcgi_request_duration_seconds_count").items():
        model = dict(labels)["model"]
        buckets = sorted(((float(dict(l)["le"]), v) for l, v in
                          s.series("vwfcgi_request_duration_seconds_bucket", model=model).items()))
        assert buckets[-1] == (float("inf"), count), f"+Inf bucket of {model!r} != _count {count}: {buckets}"
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"buckets not cumulative: {buckets}"
        bounds = [b for b, _ in buckets]
        assert bounds[0] == pytest.approx(50e-6) and bounds[-2] == pytest.approx(5.0), f"bucket bounds {bounds}"


# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """logistic, oaa and cb (conftest's), trained once; each test copies what it needs."""
    path = tmp_path_factory.mktemp("metrics-models")
    train_models(path)
    return path


def copy_models(src: Path, dst: Path, *names: str) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".vw", ".json"):
            if (src / f"{name}{suffix}").exists():
                shutil.copy(src / f"{name}{suffix}", dst / f"{name}{suffix}")
    return dst




def drop(model_dir: Path, name: str, data: bytes) -> None:
    """Write-then-rename, the way users and model-sync replace a model."""
    tmp = model_dir / f".{name}.vw.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, model_dir / f"{name}.vw")


@pytest.fixture
def small_models(tmp_path) -> Path:
    """A directory with one model "m" (version 1), and a second version beside it in tmp_path."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    train_small_logistic(model_dir / "m.vw", 1, examples=300)
    train_small_logistic(tmp_path / "m2.vw", 2, examples=300)
    return model_dir


def stopped(stack: Stack) -> None:
    problems = stack.stop()
    assert not problems, "\n".join(problems)


def shards_of(stack: Stack, model: str) -> list[dict]:
    return stack.get(f"/v1/models/{model}").json()["shards"]


# ---------------------------------------------------------------- tests
def test_counters_equal_the_requests_sent(trained, tmp_path):
    model_dir = copy_models(trained, tmp_path / "models", "logistic", "cb")
    stack = Stack(model_dir, shards=1, max_body="64k", extra_args=("--max-batch", "3")).start()
    try:
        rng = random.Random(3)
        before = scrape(stack)
        sent: Counter = Counter()  # (model, route, code) -> requests
        reasons: Counter = Counter()  # reason -> errors
        examples: Counter = Counter()  # model -> examples in successful predictions

        def expect(r: requests.Response, code: int, model: str, route: str, reason: str | None = None, n: int = 0):
            assert r.status_code == code, f"want {code}, got {r.status_code}: {r.text[:300]!r}"
            sent[(model, route, str(code))] += 1
            if reason:
                reasons[reason] += 1
            if code == 200 and n:
                examples[model] += n

        # Good predictions: JSON strings, structured objects, text/plain, multiline (ADF).
        for _ in range(3):
            expect(stack.predict("logistic", [" |a x0:0.5 |b y0:0.2", " |a x1:-0.3"]), 200, "logistic", "predict", n=2)
        expect(stack.predict("logistic", [{"features": {"a": {"x0": 0.1}, "c": {"color": "red"}}}]),
               200, "logistic", "predict", n=1)
        expect(stack.post("/v1/models/logistic:predict", data=" |a x0:1\n |a x1:1\n |a x2:1\n",
                          headers={"Content-Type": "text/plain"}), 200, "logistic", "predict", n=3)
        expect(stack.predict("logistic", []), 200, "logistic", "predict")
        expect(stack.predict("cb", [cb_example(rng), cb_example(rng)]), 200, "cb", "predict", n=2)
        # Status routes.
        expect(stack.get("/v1/models"), 200, "", "models")
        expect(stack.get("/v1/models/cb"), 200, "cb", "model")
        expect(stack.get("/healthz"), 200, "", "healthz")
        expect(stack.get("/readyz"), 200, "", "readyz")
        # Errors that reach vwfcgi.
        expect(stack.predict("logistic", ["no bar here"]), 400, "logistic", "predict", "invalid_example")
        expect(stack.predict("logistic", [" |a x", ""]), 400, "logistic", "predict", "invalid_example")
        expect(stack.post("/v1/models/logistic:predict", data=b"{not json", headers={"Content-Type": "application/json"}),
               400, "logistic", "predict", "malformed_body")
        expect(stack.predict("logistic", [" |a x"] * 4), 413, "logistic", "predict", "too_many_instances")
        expect(stack.predict("nosuchmodel", [" |a x"]), 404, "", "predict", "model_not_found")
        expect(stack.get("/v1/models/nosuchmodel"), 404, "", "model", "model_not_found")
        expect(stack.post("/v1/models/logistic:predict", data=b"x", headers={"Content-Type": "image/png"}),
               415, "logistic", "predict", "unsupported_media_type")
        # Rejected by nginx itself (body over client_max_body_size 64k, a path outside the SPEC's
        # routes, a method a route does not allow): vwfcgi never sees them, so they are not counted.
        r = stack.post("/v1/models/logistic:predict", data=b" |a x\n" * 20000, headers={"Content-Type": "text/plain"})
        assert r.status_code == 413, r.status_code
        assert stack.get("/not-an-api-path").status_code == 404
        assert stack.get("/v1/nothing/here").status_code == 404
        assert stack.request("PUT", "/v1/models/logistic:predict", json={"instances": []}).status_code == 405
        assert stack.request("DELETE", "/healthz").status_code == 405

        after = scrape(stack)
    finally:
        stopped(stack)

    # The first scrape is counted in the second one, not in itself.
    sent[("", "metrics", "200")] += 1
    got = Counter()
    for labels, value in after.series("vwfcgi_requests_total").items():
        d = dict(labels)
        got[(d["model"], d["route"], d["code"])] = value
    was = Counter()
    for labels, value in before.series("vwfcgi_requests_total").items():
        d = dict(labels)
        was[(d["model"], d["route"], d["code"])] = value
    assert delta(got, was) == sent, f"requests_total moved by {dict(delta(got, was))}, want {dict(sent)}"

    by_code = delta(after.by("vwfcgi_requests_total", "code"), before.by("vwfcgi_requests_total", "code"))
    want_by_code = Counter()
    for (_, _, code), n in sent.items():
        want_by_code[code] += n
    assert by_code == want_by_code

    assert delta(after.by("vwfcgi_examples_total", "model"), before.by("vwfcgi_examples_total", "model")) == examples
    assert delta(after.by("vwfcgi_errors_total", "reason"), before.by("vwfcgi_errors_total", "reason")) == reasons

    # Histogram: one observation per request, in each scrape and between them.
    check_histogram_matches_requests(before)
    check_histogram_matches_requests(after)
    assert (after.total("vwfcgi_request_duration_seconds_count") - before.total("vwfcgi_request_duration_seconds_count")
            == sum(sent.values()))
    # The counters are typed as Prometheus expects.
    for name in ("vwfcgi_requests", "vwfcgi_examples", "vwfcgi_errors", "vwfcgi_model_loads", "vwfcgi_shard_restarts"):
        assert after.families[name].type == "counter", (name, after.families[name].type)
    for name in ("vwfcgi_inflight_requests", "vwfcgi_queue_depth", "vwfcgi_model_info", "vwfcgi_uptime_seconds"):
        assert after.families[name].type == "gauge", (name, after.families[name].type)
    assert after.total("vwfcgi_uptime_seconds") >= before.total("vwfcgi_uptime_seconds") > 0


def test_body_over_the_vwfcgi_limit_is_counted(trained, tmp_path):
    """A 413 vwfcgi answers itself (--max-body-bytes, below nginx's limit) is a request it answered."""
    model_dir = copy_models(trained, tmp_path / "models", "logistic")
    stack = Stack(model_dir, shards=1, max_body="64k", extra_args=("--max-body-bytes", "4096")).start()
    try:
        before = scrape(stack)
        r = stack.post("/v1/models/logistic:predict", data=b" |a x0:1\n" * 1000, headers={"Content-Type": "text/plain"})
        assert r.status_code == 413 and "4096" in r.text, (r.status_code, r.text)  # vwfcgi's answer, not nginx's
        after = scrape(stack)
    finally:
        stopped(stack)
    codes = delta(after.by("vwfcgi_requests_total", "code"), before.by("vwfcgi_requests_total", "code"))
    assert codes == Counter({"413": 1, "200": 1}), f"requests_total moved by {dict(codes)} (want one 413, one scrape)"
    reasons = delta(after.by("vwfcgi_errors_total", "reason"), before.by("vwfcgi_errors_total", "reason"))
    assert reasons == Counter({"body_too_large": 1}), dict(reasons)
    check_histogram_matches_requests(after)


def test_reload_counters_move_on_a_good_and_a_corrupt_drop(small_models, tmp_path):
    model_dir = small_models
    v1 = model_version(model_dir, "m")
    stack = Stack(model_dir, shards=1).start()
    try:
        before = scrape(stack)
        assert before.by("vwfcgi_model_loads_total", "result", model="m") == Counter({"ok": 1})
        assert before.series("vwfcgi_model_info", model="m") == {(("model", "m"), ("version", v1)): 1.0}

        # A good drop: a new version serves, ok +1, the info gauge names it.
        data = (tmp_path / "m2.vw").read_bytes()
        drop(model_dir, "m", data)
        v2 = model_version(model_dir, "m")
        assert v2 != v1
        assert wait_for(lambda: stack.get("/v1/models/m").json()["version"] == v2), \
            f"version {v2} not served: {stack.get('/v1/models/m').text}"
        good = wait_for(lambda: (s := scrape(stack)).series("vwfcgi_model_info", model="m", version=v2) and s)
        assert good, "vwfcgi_model_info never named the new version"
        loads = good.by("vwfcgi_model_loads_total", "result", model="m")
        assert loads == Counter({"ok": 2}), dict(loads)
        info = {dict(l)["version"]: v for l, v in good.series("vwfcgi_model_info", model="m").items() if v}
        assert info == {v2: 1.0}, f"model_info of m: {info} (want only {v2} at 1)"
        r = stack.predict("m", EXAMPLES)
        assert r.status_code == 200 and r.json()["version"] == v2

        # A corrupt drop: failed +1, the good version keeps serving and keeps its info gauge.
        drop(model_dir, "m", b"this is not a vw model\n" * 50)
        bad = wait_for(lambda: (s := scrape(stack)).total("vwfcgi_model_loads_total", model="m", result="failed") and s)
        assert bad, f"no failed load counted: {stack.get('/v1/models/m').text}"
        loads = bad.by("vwfcgi_model_loads_total", "result", model="m")
        assert loads == Counter({"ok": 2, "failed": 1}), dict(loads)
        info = {dict(l)["version"]: v for l, v in bad.series("vwfcgi_model_info", model="m").items() if v}
        assert info == {v2: 1.0}, info
        r = stack.predict("m", EXAMPLES)
        assert r.status_code == 200 and r.json()["version"] == v2
        status = stack.get("/v1/models/m").json()
        assert status["last_error"], status
    finally:
        stopped(stack)


def test_restart_counter_moves_on_kill_9_of_a_vw(small_models):
    stack = Stack(small_models, shards=2).start()
    try:
        first = scrape(stack)
        assert first.series("vwfcgi_shard_restarts_total", model="m") == {(("model", "m"),): 0.0}, \
            "the restart counter should exist at 0 from the start"
        for kills, index in enumerate((0, 1, 0), start=1):
            victim = shards_of(stack, "m")[index]["pid"]
            os.kill(victim, signal.SIGKILL)

            def replaced():
                shard = shards_of(stack, "m")[index]
                return shard["pid"] not in (None, victim) and shard["ready"]
            assert wait_for(replaced), f"shard {index} not replaced: {stack.get('/v1/models/m').text}"
            s = scrape(stack)
            assert s.total("vwfcgi_shard_restarts_total", model="m") == kills
        restarts = sum(shard["restarts"] for shard in shards_of(stack, "m"))
        assert restarts == 3, f"status shows {restarts} restarts"
        assert stack.predict("m", EXAMPLES).status_code == 200
    finally:
        stopped(stack)


def test_inflight_and_queue_depth_show_waiting_requests(small_models):
    # `--engine vw`: requests wait on the stopped vw only when the pool answers them.
    stack = Stack(small_models, shards=1, extra_args=("--engine", "vw", "--timeout", "20")).start()
    vw = shards_of(stack, "m")[0]["pid"]
    replies: list[int] = []
    threads = [threading.Thread(target=lambda: replies.append(
        requests.post(stack.url("/v1/models/m:predict"), json={"instances": EXAMPLES[:2]}, timeout=30).status_code))
        for _ in range(3)]
    try:
        idle = scrape(stack)
        assert idle.total("vwfcgi_inflight_requests", model="m") == 0
        assert idle.total("vwfcgi_queue_depth", model="m") == 0
        os.kill(vw, signal.SIGSTOP)
        try:
            for t in threads:
                t.start()
            # A request is counted in flight when the router takes it and queued a moment later, when it reaches
            # the pool: one scrape can fall between the two (CI saw inflight 3, queue depth 2), so wait for both.
            held = wait_for(lambda: (s := scrape(stack)).total("vwfcgi_inflight_requests", model="m") == 3
                            and s.total("vwfcgi_queue_depth", model="m") == 3 and s)
            last = scrape(stack)
            assert held, f"inflight and queue depth never both 3: {last.series('vwfcgi_inflight_requests')}, " \
                         f"{last.series('vwfcgi_queue_depth')}"
        finally:
            os.kill(vw, signal.SIGCONT)
        for t in threads:
            t.join(timeout=30)
        assert replies == [200, 200, 200], replies
        done = scrape(stack)
        assert done.total("vwfcgi_inflight_requests", model="m") == 0
        assert done.total("vwfcgi_queue_depth", model="m") == 0
    finally:
        stopped(stack)


LEVELS = {"trace", "debug", "info", "notice", "warning", "error", "critical"}


def test_json_log_lines(small_models):
    """--log-format json: every line is an object with ts, level and msg; events name their model;
    a 5xx names the nginx request id; nothing is logged per request at the default level."""
    model_dir = small_models
    shutil.copy(model_dir / "m.vw", model_dir / "good.vw")
    (model_dir / "broken.vw").write_bytes(b"not a model at all\n")
    version = model_version(model_dir, "m")
    stack = Stack(model_dir, shards=1, extra_args=("--log-format", "json")).start(ready=False)
    try:
        assert wait_for(lambda: stack.get("/v1/models/m").json()["ready"] and stack.get("/v1/models/good").json()["ready"])
        wait_for(lambda: stack.vwfcgi_log.read_text().count("\n") >= 3)
        lines_before = stack.vwfcgi_log.read_text().count("\n")
        # Requests, good and 4xx: no log line.
        for _ in range(10):
            assert stack.predict("m", EXAMPLES).status_code == 200
            assert stack.predict("m", ["no bar"]).status_code == 400
            assert stack.predict("nosuch", EXAMPLES).status_code == 404
        assert stack.vwfcgi_log.read_text().count("\n") == lines_before, \
            "vwfcgi logs per request at the default level:\n" + stack.vwfcgi_log.read_text()
        # A 503 (model not ready) with a client request id.
        r = stack.predict("broken", EXAMPLES, headers={"X-Request-ID": "obs-test-4711"})
        assert r.status_code == 503, r.text
        # A shard restart.
        victim = shards_of(stack, "m")[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: shards_of(stack, "m")[0]["pid"] not in (None, victim) and shards_of(stack, "m")[0]["ready"])
    finally:
        stopped(stack)

    text = stack.vwfcgi_log.read_text()
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line!r}\n{text}")
        assert isinstance(entry, dict), line
        assert {"ts", "level", "msg"} <= set(entry), f"line {number} lacks ts/level/msg: {line}"
        assert entry["level"] in LEVELS, line
        assert isinstance(entry["msg"], str) and entry["msg"], line
        datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
        entries.append(entry)
    assert entries, "no log lines at all"

    def find(predicate, what):
        hits = [e for e in entries if predicate(e)]
        assert hits, f"no {what} log line in:\n{text}"
        return hits[0]

    find(lambda e: e.get("model") == "m" and e.get("version") == version and e["level"] == "info", "model load of m")
    find(lambda e: e.get("model") == "broken" and e["level"] in ("warning", "error", "critical")
         and any(k in e for k in ("reason", "error")), "load failure of broken, with a reason,")
    find(lambda e: e.get("model") == "m" and e["level"] in ("warning", "error")
         and str(victim) in json.dumps(e), f"restart of m's vw (pid {victim})")
    find(lambda e: "obs-test-4711" in json.dumps(e) and e["level"] in ("warning", "error"), "5xx with the request id")


def test_text_log_and_access_log_quote_a_request_id_with_spaces(small_models):
    """X-Request-Id `x status=200 path=/healthz` must not add fields to vwfcgi's text log (key=value)
    nor to nginx's access log: both write the value in double quotes (issue 20)."""
    model_dir = small_models
    (model_dir / "broken.vw").write_bytes(b"not a model at all\n")
    forged = 'x status=200 path=/healthz "q'
    stack = Stack(model_dir, shards=1).start(ready=False)
    try:
        assert wait_for(lambda: stack.get("/v1/models/m").json()["ready"])
        r = stack.predict("broken", EXAMPLES, headers={"X-Request-ID": forged})
        assert r.status_code == 503, r.text
    finally:
        stopped(stack)
    failed = [line for line in stack.vwfcgi_log.read_text().splitlines() if "request failed" in line]
    assert len(failed) == 1, stack.vwfcgi_log.read_text()
    # `<ts> warning vwfcgi: key=value ... [VWFCGI] request failed`
    fields = shlex.split(failed[0].split(": ", 1)[1].rsplit(" [", 1)[0])
    values = dict(field.split("=", 1) for field in fields)
    assert values == {"path": "/v1/models/broken:predict", "request_id": forged, "status": "503"}, failed[0]
    access = [line for line in (stack.prefix / "access.log").read_text().splitlines() if "broken:predict" in line]
    assert len(access) == 1, access
    tokens = shlex.split(access[0].replace("\\x22", '\\"'))
    assert [t.split("=", 1)[0] for t in tokens if "=" in t] == ["request_time", "upstream_time", "request_id"], access[0]
    assert f"request_id={forged}" in tokens, access[0]
