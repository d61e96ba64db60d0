"""Error paths of the learning loop's routes that no other test reaches (SPEC §5 table, §8.2–8.6).

`:rank`, `:reward`, `:activate` and `:learn`, through nginx + vwfcgi + the real vw:
415 unsupported content type, 413 body over the limit, 413 more `:learn` examples than
`max_batch`, 413 a `:rank` context over the interaction budget, 400 `:learn` on a model that
cannot learn or with nothing to learn, 405 on `GET :learn`, 404 `:learn` on an unknown model
(with its JSON error), 400 bodies nested deeper than the limit, 503 `:rank`/`:learn` and V2
`ready`/`infer` on a model with no serving version, 503 `:rank` past the queue limit, 503
`:activate` and `:learn` when the event log cannot be written, 504 `:rank` when vw does not
answer in time.

Every refusal is followed by a check that the server still answers correctly, against VW's own
output (`bin/vw -t`), and that the refused request logged nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import REFERENCE_VW, Stack, assert_json_error, wait_until
from test_loop import _train_log, assert_same_pmf, context, draw, ranking_pairs, vw_pmfs

MAX_BODY = 64 * 1024  # vwfcgi's --max-body-bytes here (nginx's limit stays above it)
MAX_LINE = 16 * 1024  # --max-line-bytes (the interaction bomb below fits it)
LIN_MAX_BATCH = 5
INTERACTION_BUDGET = 2_000  # a small context costs a few dozen, the "bomb" context ~25,000
LIN_PROBE = ["|f a:1 b:1", "|f a:2 b:0"]
RANK_PROBE = [context("alice"), context("carol", Ctx={"weekday": "tue"})]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """`cb` (vw_json, --cb_explore_adf -q UA, loop), `lin` (VW text, loop, max_batch 5), `plain` (lin
    without a loop), `broken` and `brokenlin` (files that fail to load: known, never serving)."""
    work = tmp_path_factory.mktemp("loop-errors-train")
    models = tmp_path_factory.mktemp("loop-errors-models")
    log = work / "log.dsjson"
    _train_log(log, examples=300)
    subprocess.run([REFERENCE_VW, "--dsjson", "--cb_explore_adf", "--epsilon", "0.2", "-q", "UA", "--random_seed", "3",
                    "-d", str(log), "-f", str(models / "cb.vw"), "--quiet"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    (models / "cb.json").write_text(json.dumps({"input": "vw_json", "loop": {"update_interval": "1h"}}) + "\n")
    seed = work / "seed.txt"
    seed.write_text("".join(f"{i % 4} |f a:{i % 3} b:{i % 2}\n" for i in range(20)))
    subprocess.run([REFERENCE_VW, "-d", str(seed), "-f", str(models / "lin.vw"), "--quiet"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    (models / "lin.json").write_text(json.dumps({"max_batch": LIN_MAX_BATCH, "loop": {"update_interval": "1h"}}) + "\n")
    (models / "plain.vw").write_bytes((models / "lin.vw").read_bytes())
    (models / "broken.vw").write_bytes(b"this is not a VW model\n")
    (models / "broken.json").write_text(json.dumps({"input": "vw_json", "loop": {"update_interval": "1h"}}) + "\n")
    (models / "brokenlin.vw").write_bytes(b"neither is this\n")
    (models / "brokenlin.json").write_text(json.dumps({"loop": {"update_interval": "1h"}}) + "\n")
    return models


def vw_predictions(model: Path, lines: list[str], tmp: Path) -> list[float]:
    """VW's own `-t` predictions for VW text lines."""
    data, out = tmp / "lin-in.txt", tmp / "lin-out.txt"
    data.write_text("".join(line + "\n" for line in lines))
    subprocess.run([REFERENCE_VW, "-i", str(model), "-t", "-d", str(data), "-p", str(out), "--quiet"],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)
    return [float(v) for v in out.read_text().split()]


class Checked:
    """A stack and VW's answers for its probes: `unharmed(after)` checks it still answers them correctly
    and that the refused request logged nothing."""

    def __init__(self, stack: Stack, models: Path, tmp: Path):
        self.stack = stack
        self.pmfs = vw_pmfs(models, RANK_PROBE, tmp)
        self.lin = vw_predictions(models / "lin.vw", LIN_PROBE, tmp)
        self.probes = 0
        self.counts = self.loop_counts()

    def loop_counts(self) -> dict:
        out = {}
        for model in ("cb", "lin"):
            r = self.stack.get(f"/v1/models/{model}/loop")
            assert r.status_code == 200, r.text[:300]
            doc = r.json()
            out[model] = (doc["decisions"], doc["rewards"], doc.get("learns"))
        return out

    def unharmed(self, after: str, *, logged: bool = True) -> None:
        s = self.stack
        if logged:
            counts = self.loop_counts()
            assert counts == self.counts, f"after {after}: the refused request changed the loop counts " \
                                          f"{self.counts} -> {counts}"
        r = s.predict("cb", RANK_PROBE)
        assert r.status_code == 200, f"after {after}: :predict cb {r.status_code} {r.text[:300]!r}"
        for i, (got, want) in enumerate(zip(r.json()["predictions"], self.pmfs, strict=True)):
            assert_same_pmf(ranking_pairs(got), want, f"after {after}: :predict cb {i}")
        r = s.predict("lin", LIN_PROBE)
        assert r.status_code == 200, f"after {after}: :predict lin {r.status_code} {r.text[:300]!r}"
        got = [float(p) for p in r.json()["predictions"]]
        assert len(got) == len(self.lin) and all(abs(g - w) <= 1e-6 for g, w in zip(got, self.lin)), \
            f"after {after}: lin predicts {got}, vw -t {self.lin}"
        if not logged:
            return
        # The loop routes themselves still work (and are counted from here on).
        self.probes += 1
        event_id = f"probe-{self.probes}"
        r = s.post("/v1/models/cb:rank", json={"event_id": event_id, "context": RANK_PROBE[1]})
        assert r.status_code == 200, f"after {after}: :rank {r.status_code} {r.text[:300]!r}"
        doc = r.json()
        assert_same_pmf(ranking_pairs(doc["ranking"]), self.pmfs[1], f"after {after}: :rank")
        assert doc["action"] == draw(event_id, self.pmfs[1]), f"after {after}: :rank drew {doc['action']}"
        r = s.post("/v1/models/cb:reward", json={"event_id": event_id, "reward": 1.0})
        assert r.status_code == 202 and r.json() == {"accepted": 1}, f"after {after}: :reward {r.status_code} {r.text}"
        r = s.post("/v1/models/lin:learn", json={"instances": ["1 |f a:1"]})
        assert r.status_code == 202 and r.json() == {"accepted": 1}, f"after {after}: :learn {r.status_code} {r.text}"
        self.counts = self.loop_counts()


@pytest.fixture(scope="module")
def checked(models, tmp_path_factory):
    # `--engine vw`: the last test stops cb's vw and expects :rank's 504, which a native scorer would not give.
    stack = Stack(models, state_dir=tmp_path_factory.mktemp("loop-errors-state"), extra_args=(
        "--engine", "vw", "--max-body-bytes", str(MAX_BODY), "--max-line-bytes", str(MAX_LINE), "--max-interaction-features", str(INTERACTION_BUDGET),
        "--timeout", "2")).start(ready=True)
    try:
        for name in ("broken", "brokenlin"):
            status = stack.get(f"/v1/models/{name}").json()
            assert status["ready"] is False and status["last_error"], status
        yield Checked(stack, models, tmp_path_factory.mktemp("loop-errors-vw"))
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


LOOP_REQUESTS = [
    ("/v1/models/cb:rank", {"event_id": "ct", "context": context("alice")}),
    ("/v1/models/cb:reward", {"event_id": "ct", "reward": 1.0}),
    ("/v1/models/cb:activate", {"event_id": "ct"}),
    ("/v1/models/lin:learn", {"instances": ["1 |f a:1"]}),
]


@pytest.mark.parametrize("ctype", ["application/xml", "application/x-www-form-urlencoded",
                                   "text/plain; charset=latin-1", "multipart/form-data; boundary=x"])
@pytest.mark.parametrize("path,body", LOOP_REQUESTS, ids=[p.rsplit(":", 1)[1] for p, _ in LOOP_REQUESTS])
def test_loop_routes_answer_415_to_an_unsupported_content_type(checked, path, body, ctype):
    r = checked.stack.post(path, data=json.dumps(body).encode(), headers={"Content-Type": ctype})
    assert_json_error(r, 415)
    checked.unharmed(f"{ctype} on {path}")


@pytest.mark.parametrize("path,body", [
    ("/v1/models/cb:rank", {"event_id": "big", "context": context("alice", Pad={f"f{i}": i for i in range(8_000)})}),
    ("/v1/models/cb:reward", {"rewards": [{"event_id": f"e-{i}", "reward": 1.0} for i in range(4_000)]}),
    ("/v1/models/cb:activate", {"event_id": "big", "pad": "y" * (MAX_BODY + 1)}),
    ("/v1/models/lin:learn", {"instances": [f"1 |f a:{i}" for i in range(10_000)]}),
], ids=["rank", "reward", "activate", "learn"])
def test_loop_routes_answer_413_to_a_body_over_the_limit(checked, path, body):
    data = json.dumps(body).encode()
    assert MAX_BODY < len(data) < 1024 * 1024, len(data)  # over vwfcgi's limit, under nginx's
    assert_json_error(checked.stack.post(path, data=data, headers={"Content-Type": "application/json"}), 413)
    checked.unharmed(f"a {len(data)}-byte body on {path}")


def test_learn_over_max_batch_is_413_and_at_max_batch_is_accepted(checked):
    lines = [f"{i} |f a:{i}" for i in range(LIN_MAX_BATCH + 1)]
    assert_json_error(checked.stack.post("/v1/models/lin:learn", json={"instances": lines}), 413,
                      contains=str(LIN_MAX_BATCH))
    checked.unharmed(":learn of max_batch + 1 (JSON)")
    r = checked.stack.post("/v1/models/lin:learn", data="".join(line + "\n" for line in lines),
                           headers={"Content-Type": "text/plain"})
    assert_json_error(r, 413, contains=str(LIN_MAX_BATCH))
    checked.unharmed(":learn of max_batch + 1 (text/plain)")
    r = checked.stack.post("/v1/models/lin:learn", json={"instances": lines[:LIN_MAX_BATCH]})
    assert r.status_code == 202 and r.json() == {"accepted": LIN_MAX_BATCH}, r.text
    checked.counts = checked.loop_counts()
    checked.unharmed(":learn of max_batch")


def test_rank_over_the_interaction_budget_is_413_and_logs_no_decision(checked):
    # -q UA: 50 User features x 25 actions x 20 Action features = 25,000 pairs.
    bomb = {"User": {f"u{i}": 1 for i in range(50)},
            "_multi": [{"Action": {f"t{k}-{j}": 1 for j in range(20)}} for k in range(25)]}
    r = checked.stack.post("/v1/models/cb:rank", json={"event_id": "bomb", "context": bomb})
    assert_json_error(r, 413)
    checked.unharmed(":rank of an interaction bomb")


@pytest.mark.parametrize("path,body,status,contains", [
    ("/v1/models/cb:learn", {"instances": ["1 |f a:1"]}, 400, "cannot :learn"),  # vw_json, multiline
    ("/v1/models/plain:learn", {"instances": ["1 |f a:1"]}, 400, "cannot :learn"),  # no loop
    ("/v1/models/lin:learn", {"instances": []}, 400, "no examples"),
    ("/v1/models/lin:learn", {"examples": ["1 |f a:1"]}, 400, "instances"),
    ("/v1/models/lin:learn", ["1 |f a:1"], 400, None),
    ("/v1/models/lin:learn", {"instances": ["1 |f a:1", "save_x |f a:1"]}, 400, "instance 1"),
    ("/v1/models/lin:learn", {"instances": ["1 |f a:1\u0000 b:2"]}, 400, "instance 0"),
    ("/v1/models/lin:learn", {"instances": ["1 |f a:1", "1 |f " + "x" * (2 * MAX_LINE)]}, 400, "instance 1"),
    ("/v1/models/nope:learn", {"instances": ["1 |f a:1"]}, 404, "nope"),
])
def test_learn_refusals(checked, path, body, status, contains):
    assert_json_error(checked.stack.post(path, json=body), status, contains=contains)
    checked.unharmed(f"{json.dumps(body)[:60]} on {path}")


def nested(depth: int) -> dict:
    node: dict = {"x": 1}
    for _ in range(depth):
        node = {"n": node}
    return node


@pytest.mark.parametrize("path,body", [
    ("/v1/models/cb:rank", {"event_id": "deep", "context": {"User": nested(40), "_multi": [{"Action": {"t": "a0"}}]}}),
    ("/v1/models/cb:reward", {"event_id": "deep", "reward": 1.0, "x": nested(40)}),
    ("/v1/models/cb:activate", {"event_id": "deep", "x": nested(40)}),
    ("/v1/models/lin:learn", {"instances": ["1 |f a:1"], "x": nested(40)}),
], ids=["rank", "reward", "activate", "learn"])
def test_loop_bodies_nested_deeper_than_the_limit_are_400(checked, path, body):
    assert_json_error(checked.stack.post(path, json=body), 400, contains="nesting")
    checked.unharmed(f"a body nested 40 deep on {path}")


def test_learn_empty_text_body_is_400(checked):
    r = checked.stack.post("/v1/models/lin:learn", data=b"", headers={"Content-Type": "text/plain"})
    assert_json_error(r, 400, contains="no examples")
    checked.unharmed("an empty text/plain :learn")


def test_get_learn_is_405_with_allow_post(checked):
    r = checked.stack.get("/v1/models/lin:learn")
    assert_json_error(r, 405)
    assert r.headers.get("Allow") == "POST", dict(r.headers)
    checked.unharmed("GET :learn")


@pytest.mark.parametrize("path,body", [
    ("/v1/models/broken:rank", {"event_id": "nr", "context": context("alice")}),
    ("/v1/models/brokenlin:learn", {"instances": ["1 |f a:1"]}),
], ids=["rank", "learn"])
def test_rank_and_learn_on_a_model_with_no_serving_version_are_503(checked, path, body):
    r = checked.stack.post(path, json=body)
    assert_json_error(r, 503, contains="no serving version")
    assert r.headers.get("Retry-After"), dict(r.headers)
    checked.unharmed(f"{path} on a model that never loaded")


@pytest.mark.parametrize("path,method,body", [
    ("/v2/models/broken/ready", "GET", None),
    ("/v2/models/broken/infer", "POST",
     {"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": [json.dumps(context("alice"))]}]}),
], ids=["ready", "infer"])
def test_v2_on_a_model_with_no_serving_version_is_503(checked, path, method, body):
    r = checked.stack.request(method, path, json=body)
    assert_json_error(r, 503, contains="no serving version")
    assert r.headers.get("Retry-After"), dict(r.headers)
    checked.unharmed(f"{method} {path} on a model that never loaded")


def test_rank_answers_504_when_vw_does_not_answer_and_logs_no_decision(checked):
    """Last in this file: it stops cb's vw (--timeout 2)."""
    stack = checked.stack
    pids = [s["pid"] for s in stack.get("/v1/models/cb").json()["shards"]]
    assert pids and all(pids), pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        r = stack.post("/v1/models/cb:rank", json={"event_id": "slow", "context": context("bob")})
        assert_json_error(r, 504)
        # lin keeps answering meanwhile (unharmed without the cb loop checks).
        r = stack.predict("lin", LIN_PROBE)
        assert r.status_code == 200, r.text
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    decisions = stack.get("/v1/models/cb/loop").json()["decisions"]
    assert decisions == checked.counts["cb"][0], "a :rank that answered 504 logged a decision"


def test_an_unwritable_event_log_answers_503_to_activate_and_learn(models, tmp_path):
    """SPEC §8.4 (test_loop.py covers :rank and :reward): :activate and :learn too, :predict unaffected."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be\n")
    stack = Stack(models, state_dir=blocker).start()
    try:
        want = vw_predictions(models / "lin.vw", LIN_PROBE, tmp_path)
        for _ in range(2):
            for path, body in (("/v1/models/cb:activate", {"event_id": "e-unwritable"}),
                               ("/v1/models/lin:learn", {"instances": ["1 |f a:1"]})):
                r = stack.post(path, json=body)
                assert_json_error(r, 503, contains="cannot log the event")
                assert r.headers.get("Retry-After"), (path, dict(r.headers))
            r = stack.post("/v1/models/lin:learn", data="1 |f a:1\n", headers={"Content-Type": "text/plain"})
            assert_json_error(r, 503, contains="cannot log the event")
            r = stack.predict("lin", LIN_PROBE)
            assert r.status_code == 200, r.text
            got = [float(p) for p in r.json()["predictions"]]
            assert all(abs(g - w) <= 1e-6 for g, w in zip(got, want, strict=True)), (got, want)
        assert blocker.read_text() == "a file where the state directory should be\n"
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_rank_on_a_full_queue_is_503_and_logs_no_decision(models, tmp_path):
    """SPEC §6 bounded queues, for :rank: past --max-queue, 503 with Retry-After, nothing logged."""
    # `--engine vw`: the queue is vw's (a native model's ranks never wait in it).
    stack = Stack(models, state_dir=tmp_path / "state", extra_args=("--engine", "vw", "--max-queue", "1", "--timeout", "30")).start()
    try:
        pmfs = vw_pmfs(models, RANK_PROBE, tmp_path)
        [pid] = [s["pid"] for s in stack.get("/v1/models/cb").json()["shards"]]
        held: list = []
        os.kill(pid, signal.SIGSTOP)
        try:
            first = threading.Thread(target=lambda: held.append(stack.post(
                "/v1/models/cb:rank", json={"event_id": "held", "context": RANK_PROBE[0]})))
            first.start()
            inflight = lambda: stack.get("/v1/models/cb").json()["shards"][0]["inflight"] >= 1  # noqa: E731
            assert wait_until(inflight, 20, step=0.05), stack.get("/v1/models/cb").json()
            r = stack.post("/v1/models/cb:rank", json={"event_id": "refused", "context": RANK_PROBE[1]})
            assert_json_error(r, 503, contains="overloaded")
            assert r.headers.get("Retry-After"), dict(r.headers)
        finally:
            os.kill(pid, signal.SIGCONT)
        first.join(timeout=60)
        assert held and held[0].status_code == 200, held and held[0].text
        assert_same_pmf(ranking_pairs(held[0].json()["ranking"]), pmfs[0], "the held :rank")
        assert held[0].json()["action"] == draw("held", pmfs[0])
        r = stack.post("/v1/models/cb:rank", json={"event_id": "after", "context": RANK_PROBE[1]})
        assert r.status_code == 200, r.text
        assert_same_pmf(ranking_pairs(r.json()["ranking"]), pmfs[1], ":rank after the 503")
        # "held" and "after" were logged; the refused one was not.
        assert stack.get("/v1/models/cb/loop").json()["decisions"] == 2
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
