"""The learning loop, decide + log + reward + join (SPEC §8.1–8.5, §8.8; issue 12).

A contextual-bandit model is trained here by the real vw (`bin/vw --dsjson --cb_explore_adf`) from
a synthetic decision log (three users, each preferring a different action). Every expected PMF is
VW's own `-t --json` output, every joined file is read back by the real vw, and the action drawn
for an event id is recomputed with the generator the README and SPEC §8.2 name (SHA-256 of the
event id -> SplitMix64 -> u in [0, 1)), so the statistical check is deterministic.

All waits are liveness bounds (`wait_until`), never performance assertions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import REFERENCE_VW, HTTP_TIMEOUT, Stack, assert_json_error, wait_until

JOIN_BOUND = 15.0  # liveness bound for "the joiner got there" (reward_wait is 1 s, the joiner runs every 250 ms)
REWARD_WAIT = 1.0
DEFAULT_REWARD = 0.25  # not 0, so a default reward is told apart from a missing one
USERS = ["alice", "bob", "carol"]
ACTIONS = 3


def context(user: str, actions: int = ACTIONS, **extra) -> dict:
    """A VW JSON ADF context: shared `User` namespace, one `Action` namespace per action (`_multi` last)."""
    shared = {"User": {"id": user}}
    shared.update(extra)
    shared["_multi"] = [{"Action": {"t": f"a{k}"}} for k in range(actions)]
    return shared


# ---------------------------------------------------------------- model
def _train_log(path: Path, examples: int = 1500) -> None:
    """A synthetic dsjson log: user u gets reward 1 (cost -1) for action u, 0 otherwise; uniform logging."""
    rng = random.Random(20)
    with path.open("w") as f:
        for i in range(examples):
            u, a = rng.randrange(3), rng.randrange(ACTIONS)
            f.write(json.dumps({
                "_label_cost": -1 if a == u else 0, "_label_probability": 0.3333, "_label_Action": a + 1,
                "_labelIndex": a, "o": [], "a": [a + 1] + [k + 1 for k in range(ACTIONS) if k != a],
                "p": [0.3333] * ACTIONS, "c": context(USERS[u]), "EventId": f"t{i}",
            }) + "\n")


@pytest.fixture(scope="module")
def loop_models(tmp_path_factory) -> Path:
    """`cb` (vw_json, --cb_explore_adf, loop), `cbadf` (vw_json, --cb_adf: no probabilities),
    `cbtext` (the cb model without "input": VW text)."""
    work = tmp_path_factory.mktemp("loop-train")
    models = tmp_path_factory.mktemp("loop-models")
    log = work / "log.dsjson"
    _train_log(log)
    for name, args in (("cb", ["--cb_explore_adf", "--epsilon", "0.2"]), ("cbadf", ["--cb_adf"])):
        subprocess.run([REFERENCE_VW, "--dsjson", *args, "-q", "UA", "--random_seed", "3", "-d", str(log),
                        "-f", str(models / f"{name}.vw"), "--quiet"],
                       check=True, timeout=120, stdin=subprocess.DEVNULL)
    (models / "cbtext.vw").write_bytes((models / "cb.vw").read_bytes())
    # The loop's learning half (test_learning.py) waits an hour here: these tests compare with the model as trained.
    (models / "cb.json").write_text(json.dumps(
        {"input": "vw_json", "loop": {"reward_wait": f"{REWARD_WAIT:g}s", "default_reward": DEFAULT_REWARD,
                                      "update_interval": "1h", "reward_range": [-10, 10]}}) + "\n")
    (models / "cbadf.json").write_text(json.dumps({"input": "vw_json"}) + "\n")
    return models


@pytest.fixture(scope="module")
def loop_stack(loop_models, tmp_path_factory):
    s = Stack(loop_models, state_dir=tmp_path_factory.mktemp("loop-state")).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture
def fresh_stack(loop_models, tmp_path_factory):
    """A stack of its own (own state directory, counts from zero)."""
    s = Stack(loop_models, state_dir=tmp_path_factory.mktemp("loop-state")).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- VW's answers
def vw_pmfs(model_dir: Path, contexts: list[dict], tmp: Path, model: str = "cb.vw") -> list[list[tuple[int, float]]]:
    """VW's own `-t --json` output for `contexts` (model `model_dir/model`): one [(action, probability), ...] per
    context, in VW's order."""
    data, out = tmp / "in.json", tmp / "out.txt"
    data.write_text("".join(json.dumps(c) + "\n" for c in contexts))
    subprocess.run([REFERENCE_VW, "-i", str(model_dir / model), "-t", "--json", "-d", str(data), "-p", str(out),
                    "--quiet"], check=True, timeout=60, stdin=subprocess.DEVNULL)
    pmfs = []
    for line in out.read_text().splitlines():
        if line.strip():
            pmfs.append([(int(a), float(p)) for a, p in (item.split(":") for item in line.split()[0].split(","))])
    assert len(pmfs) == len(contexts), f"vw printed {len(pmfs)} PMFs for {len(contexts)} contexts"
    return pmfs


def draw(event_id: str, pmf: list[tuple[int, float]]) -> int:
    """The documented generator (SPEC §8.2, README): the first 8 bytes of SHA-256(event id) as a
    little-endian SplitMix64 seed, one step, top 53 bits -> u; the first action in VW's order whose
    cumulative probability exceeds u x total. Returns the action (index into `_multi`)."""
    mask = (1 << 64) - 1
    z = (int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:8], "little") + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    u = (z >> 11) * 2.0 ** -53
    total = sum(max(0.0, p) for _, p in pmf)
    threshold, cumulative = u * total, 0.0
    for action, p in pmf:
        cumulative += max(0.0, p)
        if cumulative > threshold:
            return action
    return [a for a, p in pmf if p > 0][-1]


def ranking_pairs(ranking) -> list[tuple[int, float]]:
    assert isinstance(ranking, list) and ranking, ranking
    for item in ranking:
        assert set(item) == {"action", "probability"}, item
    return [(item["action"], item["probability"]) for item in ranking]


def assert_same_pmf(got: list[tuple[int, float]], want: list[tuple[int, float]], what: str) -> None:
    assert [a for a, _ in got] == [a for a, _ in want], f"{what}: actions {got} not in VW's order {want}"
    for (a, p), (_, q) in zip(got, want):
        assert abs(p - q) <= 1e-6, f"{what}: action {a} probability {p} != VW's {q}"


# ---------------------------------------------------------------- HTTP helpers
def rank(stack: Stack, ctx: dict, event_id: str | None = None, *, deferred: bool | None = None,
         session: requests.Session | None = None) -> requests.Response:
    body = {"context": ctx}
    if event_id is not None:
        body["event_id"] = event_id
    if deferred is not None:
        body["deferred"] = deferred
    if session is None:
        return stack.post("/v1/models/cb:rank", json=body)
    return session.post(stack.url("/v1/models/cb:rank"), json=body, timeout=HTTP_TIMEOUT)


def rank_ok(stack: Stack, ctx: dict, event_id: str | None = None, **kw) -> dict:
    r = rank(stack, ctx, event_id, **kw)
    assert r.status_code == 200, f"rank: {r.status_code} {r.text[:300]!r}"
    doc = r.json()
    assert set(doc) == {"model", "version", "event_id", "action", "probability", "ranking"}, doc
    return doc


def reward_ok(stack: Stack, event_id: str, value: float) -> None:
    r = stack.post("/v1/models/cb:reward", json={"event_id": event_id, "reward": value})
    assert r.status_code == 202, f"reward: {r.status_code} {r.text[:300]!r}"
    assert r.json() == {"accepted": 1}


def loop_status(stack: Stack, model: str = "cb") -> dict:
    r = stack.get(f"/v1/models/{model}/loop")
    assert r.status_code == 200, f"loop status: {r.status_code} {r.text[:300]!r}"
    return r.json()


def joined_files(state: Path, model: str = "cb") -> list[Path]:
    """The joined files in join order (numeric name order)."""
    directory = state / model / "joined"
    if not directory.is_dir():
        return []
    files = [p for p in directory.iterdir() if p.name.endswith(".dsjson") and not p.name.startswith(".")]
    return sorted(files, key=lambda p: int(p.name[: -len(".dsjson")]))


def joined_lines(state: Path, model: str = "cb") -> list[dict]:
    out = []
    for path in joined_files(state, model):
        text = path.read_text()
        assert text.endswith("\n"), f"{path} does not end with a newline"
        out.extend(json.loads(line) for line in text.splitlines())
    return out


def metric_samples(stack: Stack) -> dict[tuple[str, tuple], float]:
    r = stack.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# ---------------------------------------------------------------- 1. PMFs are VW's
PMF_CONTEXTS = [
    context("alice"),
    context("bob"),
    context("carol"),
    # Extra shared features (a number, a bool, a second namespace) and action features.
    {"User": {"id": "carol", "age": 2.5, "vip": True}, "Ctx": {"weekday": "mon"},
     "_multi": [{"Action": {"t": "a0", "price": 1.5}}, {"Action": {"t": "a1"}}, {"Action": {"t": "a2", "new": True}}]},
    context("alice", actions=4),  # an action the model never saw
    context("dave"),  # a user the model never saw
]


def test_pmfs_equal_vws_json_output(loop_stack, loop_models, tmp_path):
    want = vw_pmfs(loop_models, PMF_CONTEXTS, tmp_path)
    # The model answers differently per user: the PMFs are not all the same.
    assert len({tuple(w) for w in want[:3]}) == 3, want[:3]

    r = loop_stack.predict("cb", PMF_CONTEXTS)
    assert r.status_code == 200, r.text[:300]
    predictions = r.json()["predictions"]
    assert len(predictions) == len(PMF_CONTEXTS)
    for i, (got, w) in enumerate(zip(predictions, want)):
        assert_same_pmf(ranking_pairs(got), w, f":predict instance {i}")

    # text/plain: one VW JSON object per line, answered as VW prints it.
    r = loop_stack.post("/v1/models/cb:predict", data="".join(json.dumps(c) + "\n" for c in PMF_CONTEXTS),
                        headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text[:300]
    printed = [line for line in r.text.splitlines() if line.strip()]
    assert len(printed) == len(PMF_CONTEXTS), r.text
    for i, (line, w) in enumerate(zip(printed, want)):
        got = [(int(a), float(p)) for a, p in (item.split(":") for item in line.split()[0].split(","))]
        assert_same_pmf(got, w, f"text/plain :predict line {i}")

    for i, (ctx, w) in enumerate(zip(PMF_CONTEXTS, want)):
        event_id = f"pmf-{i}"
        doc = rank_ok(loop_stack, ctx, event_id)
        assert doc["model"] == "cb" and doc["event_id"] == event_id
        pairs = ranking_pairs(doc["ranking"])
        assert_same_pmf(pairs, w, f":rank context {i}")
        # The action is the documented generator's draw from the PMF, with its probability.
        assert doc["action"] == draw(event_id, pairs), f"context {i}: action {doc['action']} != the generator's"
        assert doc["probability"] == dict(pairs)[doc["action"]]
        assert 0 <= doc["action"] < len(ctx["_multi"])


# ---------------------------------------------------------------- 2. sampling
def test_same_event_id_same_action_and_frequencies_match_pmf(loop_stack, loop_models, tmp_path):
    ctx = context("bob")
    first = rank_ok(loop_stack, ctx, "same-1")
    again = rank(loop_stack, ctx, "same-1")
    assert again.status_code == 200 and again.json() == first, (first, again.text)
    # Without an event id, one is generated (a UUID) and answered.
    generated = rank_ok(loop_stack, ctx)
    assert generated["event_id"] and generated["event_id"] != "same-1"

    pmf = ranking_pairs(first["ranking"])
    # The reference for the draws below is VW's own PMF, not the server's first answer alone.
    assert_same_pmf(pmf, vw_pmfs(loop_models, [ctx], tmp_path)[0], ":rank of bob")
    n, workers = 3000, 8
    ids = [f"ev-{i}" for i in range(n)]
    chunks = [ids[k::workers] for k in range(workers)]

    def work(chunk: list[str]) -> list[tuple[str, dict]]:
        out = []
        with requests.Session() as session:
            for event_id in chunk:
                r = rank(loop_stack, ctx, event_id, session=session)
                assert r.status_code == 200, f"{event_id}: {r.status_code} {r.text[:200]!r}"
                out.append((event_id, r.json()))
        return out

    with ThreadPoolExecutor(workers) as pool:
        answers = [item for part in pool.map(work, chunks) for item in part]
    assert len(answers) == n

    counts = Counter()
    wrong = []
    for event_id, doc in answers:
        assert doc["event_id"] == event_id
        assert ranking_pairs(doc["ranking"]) == pmf, f"{event_id}: PMF changed: {doc['ranking']}"
        counts[doc["action"]] += 1
        if doc["action"] != draw(event_id, pmf):
            wrong.append((event_id, doc["action"], draw(event_id, pmf)))
    assert not wrong, f"{len(wrong)} actions are not the documented generator's draw, first {wrong[:5]}"
    for action, p in pmf:
        assert abs(counts[action] / n - p) <= 0.03, f"action {action}: frequency {counts[action] / n} vs PMF {p}"


# ---------------------------------------------------------------- 3. joined output
def test_joined_output_is_read_by_vw(fresh_stack, tmp_path):
    s = fresh_stack
    assert loop_status(s)["average_reward"] is None
    answered: dict[str, dict] = {}
    contexts: dict[str, dict] = {}
    rewards: dict[str, list] = {}
    order: list[str] = []  # non-deferred decisions, in the order they were ranked

    def decide(event_id: str, ctx: dict, deferred: bool | None = None) -> None:
        answered[event_id] = rank_ok(s, ctx, event_id, deferred=deferred)
        contexts[event_id] = ctx
        if not deferred:
            order.append(event_id)

    for i in range(6):
        decide(f"j-none-{i}", context(USERS[i % 3]))
    for i, value in enumerate([1.0, 0.5, -2.0, 0.0, 3]):
        event_id = f"j-one-{i}"
        decide(event_id, context(USERS[i % 3]))
        reward_ok(s, event_id, value)
        rewards[event_id] = [value]
    decide("j-two", context("alice", Ctx={"hour": 9}))
    reward_ok(s, "j-two", 1.0)
    reward_ok(s, "j-two", 0.5)
    rewards["j-two"] = [1.0, 0.5]
    decide("j-three", context("bob"))
    for value in (2.0, -1.0, 0.25):
        reward_ok(s, "j-three", value)
    rewards["j-three"] = [2.0, -1.0, 0.25]
    # The batch form: n rewards, n lines; one event of it gets two.
    decide("j-batch-a", context("carol"))
    decide("j-batch-b", context("alice", actions=4))
    r = s.post("/v1/models/cb:reward", json={"rewards": [
        {"event_id": "j-batch-a", "reward": 0.75}, {"event_id": "j-batch-b", "reward": -0.5},
        {"event_id": "j-batch-a", "reward": 0.125}]})
    assert r.status_code == 202 and r.json() == {"accepted": 3}, r.text
    rewards["j-batch-a"] = [0.75, 0.125]
    rewards["j-batch-b"] = [-0.5]
    # Deferred: never activated (never joined), activated, rewarded (a reward activates it too).
    decide("j-def-never", context("bob"), deferred=True)
    decide("j-def-act", context("carol"), deferred=True)
    decide("j-def-rew", context("alice"), deferred=True)
    r = s.post("/v1/models/cb:activate", json={"event_id": "j-def-act"})
    assert r.status_code == 202, r.text
    reward_ok(s, "j-def-rew", 4.0)
    rewards["j-def-rew"] = [4.0]
    # A reward for an event id nobody decided is accepted (it may be another replica's), never joined.
    reward_ok(s, "j-unknown", 9.0)

    expected = set(answered) - {"j-def-never"}
    sent_rewards = [v for vs in rewards.values() for v in vs] + [9.0]

    def done():
        st = loop_status(s)
        return st if st["joined"] == len(expected) and st["pending"] == 1 else None

    status = wait_until(done, JOIN_BOUND, step=0.1)
    assert status, f"not joined within {JOIN_BOUND}s: {loop_status(s)} (want joined {len(expected)}, pending 1)"
    assert status["decisions"] == len(answered)
    assert status["rewards"] == len(sent_rewards)
    assert status["activations"] == 1
    assert math.isclose(status["reward_sum"], sum(sent_rewards), abs_tol=1e-9), status

    files = joined_files(s.state_dir)
    assert files and [int(p.stem) for p in files] == list(range(1, len(files) + 1)), [p.name for p in files]
    all_file = tmp_path / "all.dsjson"
    all_file.write_text("".join(p.read_text() for p in files))
    lines = [json.loads(line) for line in all_file.read_text().splitlines()]
    ids = [line["EventId"] for line in lines]
    assert len(ids) == len(set(ids)), f"an event joined twice: {Counter(ids).most_common(3)}"
    assert set(ids) == expected, f"missing {expected - set(ids)}, unexpected {set(ids) - expected}"
    # Join order: the non-deferred decisions (all with the same reward_wait) in the order they were logged.
    assert [i for i in ids if i in order] == order

    version = answered["j-none-0"]["version"]
    costs = []
    for line in lines:
        event_id = line["EventId"]
        doc, ctx = answered[event_id], contexts[event_id]
        got = rewards.get(event_id, [])
        want_cost = -sum(got) if got else -DEFAULT_REWARD
        assert math.isclose(line["_label_cost"], want_cost, abs_tol=1e-9), (event_id, line["_label_cost"], want_cost)
        costs.append(line["_label_cost"])
        assert line["_label_probability"] == doc["probability"], (event_id, line, doc)
        assert line["_label_Action"] == doc["action"] + 1, (event_id, line["_label_Action"], doc["action"])
        assert line["_labelIndex"] == doc["action"], (event_id, line["_labelIndex"], doc["action"])
        want_o = [{"v": r} for r in got[:64]]  # every reward received (SPEC §8.3), at most 64 listed
        assert line["o"] == want_o, (event_id, line["o"], want_o)
        # The interaction: the chosen action first (1-based), p in a's order, c what vw saw.
        pmf = dict(ranking_pairs(doc["ranking"]))
        assert line["a"][0] == doc["action"] + 1 and sorted(line["a"]) == list(range(1, len(ctx["_multi"]) + 1))
        assert line["p"] == [pmf[a - 1] for a in line["a"]], (event_id, line["p"], doc["ranking"])
        assert line["c"] == ctx, (event_id, line["c"], ctx)
        assert line["VWState"] == {"m": version} and doc["version"] == version
        assert "Timestamp" in line and "Version" in line
        assert "DeferredAction" not in line
        assert list(line)[:5] == ["_label_cost", "_label_probability", "_label_Action", "_labelIndex", "o"]
    assert math.isclose(status["average_reward"], -sum(costs) / len(costs), abs_tol=1e-9), status

    # The decision log marks the deferred decisions.
    logged = [json.loads(line) for p in sorted((s.state_dir / "cb" / "log").glob("e2e-*.dsjson"))
              for line in p.read_text().splitlines()]
    decisions = {d["EventId"]: d for d in logged if "c" in d}
    assert set(decisions) == set(answered)
    assert {i for i, d in decisions.items() if d.get("DeferredAction") is True} == {"j-def-never", "j-def-act", "j-def-rew"}

    # The real vw reads every joined line.
    preds = tmp_path / "preds.txt"
    run = subprocess.run([REFERENCE_VW, "--dsjson", "--cb_explore_adf", "-d", str(all_file), "-p", str(preds)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"vw exited with {run.returncode}: {run.stderr[-2000:]}"
    printed = [line for line in preds.read_text().splitlines() if line.strip()]
    assert len(printed) == len(lines), f"vw printed {len(printed)} predictions for {len(lines)} joined lines"
    summary = [line for line in run.stderr.splitlines() if line.startswith("number of examples")]
    assert summary and int(summary[0].split("=")[1]) == len(lines), run.stderr[-1500:]


# ---------------------------------------------------------------- 4. kill -9
def test_kill9_loses_no_acknowledged_event_and_joins_each_once(loop_models, tmp_path_factory):
    state = tmp_path_factory.mktemp("loop-kill-state")
    first = Stack(loop_models, state_dir=state).start()
    acked_ranks: dict[str, dict] = {}
    acked_rewards: dict[str, list[float]] = {}
    lock = threading.Lock()
    killed = threading.Event()
    stop = threading.Event()
    errors: list[str] = []

    def client(t: int) -> None:
        with requests.Session() as session:
            for i in range(100_000):
                if stop.is_set():
                    return
                event_id = f"k{t}-{i}"
                try:
                    r = rank(first, context(USERS[(t + i) % 3]), event_id, session=session)
                except requests.RequestException:
                    if not killed.is_set():
                        errors.append(f"{event_id}: rank failed before the kill")
                    continue
                if r.status_code != 200:
                    if not killed.is_set():
                        errors.append(f"{event_id}: rank {r.status_code} before the kill: {r.text[:200]!r}")
                    continue
                with lock:
                    acked_ranks[event_id] = r.json()
                values = [] if i % 3 == 0 else [float(i % 7)] if i % 3 == 1 else [1.0, float(-(i % 5))]
                if len(values) == 2 and i % 4 == 3:
                    bodies = [{"rewards": [{"event_id": event_id, "reward": v} for v in values]}]  # the batch form
                else:
                    bodies = [{"event_id": event_id, "reward": v} for v in values]
                for body in bodies:
                    try:
                        rr = session.post(first.url("/v1/models/cb:reward"), json=body, timeout=HTTP_TIMEOUT)
                    except requests.RequestException:
                        break
                    if rr.status_code != 202:
                        if not killed.is_set():
                            errors.append(f"{event_id}: reward {rr.status_code} before the kill: {rr.text[:200]!r}")
                        break
                    with lock:
                        acked_rewards.setdefault(event_id, []).extend(
                            [item["reward"] for item in body["rewards"]] if "rewards" in body else [body["reward"]])

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(2.0)
        # Set first: a request in flight when the process dies fails after the kill, not before it.
        killed.set()
        os.kill(first.vwfcgi.pid, signal.SIGKILL)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=HTTP_TIMEOUT + 5)
        assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    finally:
        stop.set()
        first.stop(check=False)
    assert not errors, errors[:5]
    assert len(acked_ranks) >= 20, f"only {len(acked_ranks)} ranks acknowledged before the kill"

    # A kill in the middle of a write leaves a torn last line: make sure there is one (whether or not
    # the kill left one), an unacknowledged decision cut in the middle.
    segments = sorted((state / "cb" / "log").glob("e2e-*.dsjson"), key=lambda p: int(p.stem.split("-")[-1]))
    assert segments, f"no log segment under {state / 'cb' / 'log'}"
    old_segment = segments[-1]
    torn = b'{"EventId":"torn-1","Timestamp":"2026-01-01T00:00:00.000Z","Version":"1","a":[2,1'
    with old_segment.open("ab") as f:
        f.write(torn)
    old_bytes = old_segment.read_bytes()

    second = Stack(loop_models, state_dir=state).start()
    try:
        def union_ids() -> list[str]:
            return [line["EventId"] for line in joined_lines(state)]

        # After the restart, with no new traffic: the acknowledged decisions get joined.
        complete_without_traffic = bool(wait_until(lambda: set(acked_ranks) <= set(union_ids()), 6.0, step=0.2))
        missing_without_traffic = len(set(acked_ranks) - set(union_ids()))

        # New traffic after the restart: a decision with a reward, joined with the rest.
        after = rank_ok(second, context("alice"), "after-restart")
        reward_ok(second, "after-restart", 1.0)
        acked_ranks["after-restart"] = after
        acked_rewards["after-restart"] = [1.0]

        last: list = []

        def settled():
            ids = union_ids()
            stable = ids == last[-1] if last else False
            last.append(ids)
            return stable and loop_status(second)["pending"] == 0 and set(acked_ranks) <= set(ids)

        assert wait_until(settled, JOIN_BOUND, step=0.5), (
            f"not all acknowledged decisions joined within {JOIN_BOUND}s: "
            f"{len(set(acked_ranks) - set(union_ids()))} of {len(acked_ranks)} missing; status {loop_status(second)}")

        lines = joined_lines(state)
        counts = Counter(line["EventId"] for line in lines)
        twice = [i for i, c in counts.items() if c > 1]
        assert not twice, f"{len(twice)} events joined more than once, e.g. {twice[:5]}"
        by_id = {line["EventId"]: line for line in lines}
        bad = []
        for event_id, doc in acked_ranks.items():
            line = by_id[event_id]
            got = acked_rewards.get(event_id, [])
            # Every acknowledged reward is in its decision's line (a reward that was logged but not
            # acknowledged may be there too: then the line holds more, never less).
            if got:
                values = [o["v"] for o in line["o"]]
                if not values or values[0] != got[0] or (len(got) > 1 and len(values) < 2):
                    bad.append((event_id, "o", line["o"], got))
                elif len(values) == len(got) == 1 or (len(got) == 2 and len(values) == 2 and values[-1] == got[-1]):
                    if not math.isclose(line["_label_cost"], -sum(got), abs_tol=1e-9):
                        bad.append((event_id, "cost", line["_label_cost"], got))
            if line["_label_Action"] != doc["action"] + 1 or line["_label_probability"] != doc["probability"]:
                bad.append((event_id, "label", line["_label_Action"], line["_label_probability"], doc))
        assert not bad, f"{len(bad)} joined lines disagree with what was acknowledged, first {bad[:5]}"
        assert "torn-1" not in counts
        # The new instance wrote a new segment, never after the torn line.
        assert old_segment.read_bytes() == old_bytes
        segments = sorted((state / "cb" / "log").glob("e2e-*.dsjson"), key=lambda p: int(p.stem.split("-")[-1]))
        assert segments[-1] != old_segment
        assert any(json.loads(line).get("EventId") == "after-restart" for line in segments[-1].read_text().splitlines())
        # Still serving, correctly.
        want = vw_pmfs(loop_models, [context("bob")], tmp_path_factory.mktemp("after-restart-vw"))[0]
        doc = rank_ok(second, context("bob"), "after-restart-2")
        assert_same_pmf(ranking_pairs(doc["ranking"]), want, ":rank after the restart")  # VW's -t --json, not itself
        assert doc["action"] == draw("after-restart-2", want)

        late = []
        if not complete_without_traffic:
            late.append(f"after the restart, {missing_without_traffic} of {len(acked_ranks) - 1} acknowledged decisions "
                        f"were not joined until new traffic came (no joiner runs for a model before its first "
                        f"rank/reward/activate since start)")
        server_log = second.vwfcgi_log.read_text(errors="replace")
        if not any(word in server_log for word in ("torn", "skipped", old_segment.name)):
            late.append(f"the torn last line of {old_segment.name} was skipped but not reported in vwfcgi's log "
                        f"(SPEC 8.4: skipped and reported)")
        assert not late, "; ".join(late)
    finally:
        problems = second.stop()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- 5. bad input
BAD_RANK_BODIES = [
    (b'{"event_id": "x", "context": {"User": {"id": "a"}, "_multi": [', "end of input"),
    (b'{"event_id": "x"}', '"context" is missing'),
    (b'{"context": [1, 2]}', "context"),
    (json.dumps({"context": {"User": {"id": "a"}, "_multi": []}}).encode(), "_multi"),
    (json.dumps({"context": {"User": {"id": "a"}}}).encode(), "_multi"),
    (b'{"context": {"_multi": [{"Action": {"t": "a0"}}], "User": {"id": "a"}}}', "last"),
    (json.dumps({"event_id": "a b", "context": context("alice")}).encode(), "event_id"),
    (json.dumps({"event_id": "x" * 129, "context": context("alice")}).encode(), "event_id"),
    (json.dumps({"event_id": 7, "context": context("alice")}).encode(), "event_id"),
    (json.dumps({"event_id": "", "context": context("alice")}).encode(), "event_id"),
    (json.dumps({"event_id": "e/1", "context": context("alice")}).encode(), "event_id"),
    (json.dumps({"context": context("alice"), "deferred": "yes"}).encode(), "deferred"),
    (json.dumps({"context": context("alice"), "extra": 1}).encode(), "unknown member"),
    (json.dumps({"context": {"User": {"id": "a"}, "_comment": "x",
                             "_multi": [{"Action": {"t": "a0"}}]}}).encode(), "_comment"),
]

BAD_REWARD_BODIES = [
    (b'{"event_id": "x", "reward": ', "end of input"),
    (b'{"event_id": "x", "reward": 1e999}', "finite"),
    (b'{"event_id": "x", "reward": -1e999}', "finite"),
    (b'{"event_id": "x", "reward": NaN}', None),  # not JSON
    (b'{"event_id": "x", "reward": Infinity}', None),
    (b'{"event_id": "x", "reward": true}', "finite"),
    (json.dumps({"event_id": "", "reward": 1}).encode(), "event_id"),
    (b'{"event_id": "x", "reward": "1"}', "finite"),
    (b'{"event_id": "x", "reward": null}', "finite"),
    (b'{"event_id": "x"}', "reward"),
    (b'{"reward": 1}', "event_id"),
    (json.dumps({"event_id": "a b", "reward": 1}).encode(), "event_id"),
    (json.dumps({"event_id": "x" * 129, "reward": 1}).encode(), "event_id"),
    (json.dumps({"event_id": "x", "reward": 1, "extra": 2}).encode(), "unknown member"),
    (json.dumps({"rewards": []}).encode(), "rewards"),
    (json.dumps({"rewards": [{"event_id": "x", "reward": 1}, {"event_id": "y", "reward": "2"}]}).encode(), "reward 1"),
]

BAD_ACTIVATE_BODIES = [
    (b'{"event_id": ', "end of input"),
    (b'{}', "event_id"),
    (json.dumps({"event_id": "a b"}).encode(), "event_id"),
    (json.dumps({"event_id": "x", "reward": 1}).encode(), "unknown member"),
    (json.dumps({"event_id": "x" * 129}).encode(), "event_id"),
    (json.dumps({"event_id": 7}).encode(), "event_id"),
    (b'[]', None),
]

BAD_PREDICT_INSTANCES = [
    ({"User": {"id": "a"}, "_multi": []}, "_multi"),
    ({"User": {"id": "a"}}, "_multi"),
    ({"_multi": [{"Action": {"t": "a0"}}], "User": {"id": "a"}}, "last"),
    ({"User": {"id": "a"}, "_slots": [], "_multi": [{"Action": {"t": "a0"}}]}, "_slots"),
]


def test_bad_input_is_refused_and_the_server_stays_correct(loop_stack, loop_models, tmp_path):
    s = loop_stack
    probe_ctx = [context("alice"), context("carol", Ctx={"weekday": "tue"})]
    want = vw_pmfs(loop_models, probe_ctx, tmp_path)
    probes = iter(range(10_000))

    def unharmed(after: str) -> None:
        r = s.predict("cb", probe_ctx)
        assert r.status_code == 200, f"after {after}: :predict {r.status_code} {r.text[:300]!r}"
        for i, (got, w) in enumerate(zip(r.json()["predictions"], want)):
            assert_same_pmf(ranking_pairs(got), w, f"after {after}: :predict {i}")
        event_id = f"probe-{next(probes)}"
        doc = rank_ok(s, probe_ctx[1], event_id)
        assert_same_pmf(ranking_pairs(doc["ranking"]), want[1], f"after {after}: :rank")
        assert doc["action"] == draw(event_id, want[1])

    def refused(resp: requests.Response, status: int, contains: str | None, what: str) -> None:
        try:
            assert_json_error(resp, status, contains=contains)
        except AssertionError as error:
            raise AssertionError(f"{what}: {error}") from None
        unharmed(what)

    unharmed("nothing")
    for body, reason in BAD_RANK_BODIES:
        refused(s.post("/v1/models/cb:rank", data=body, headers={"Content-Type": "application/json"}), 400, reason,
                f":rank {body[:80]!r}")
    for body, reason in BAD_REWARD_BODIES:
        refused(s.post("/v1/models/cb:reward", data=body, headers={"Content-Type": "application/json"}), 400, reason,
                f":reward {body[:80]!r}")
    for body, reason in BAD_ACTIVATE_BODIES:
        refused(s.post("/v1/models/cb:activate", data=body, headers={"Content-Type": "application/json"}), 400, reason,
                f":activate {body[:80]!r}")
    for instance, reason in BAD_PREDICT_INSTANCES:
        refused(s.predict("cb", [context("alice"), instance]), 400, reason, f":predict {json.dumps(instance)[:80]}")
    refused(s.post("/v1/models/cb:predict", data=b'{"instances": [{"User": ', headers={"Content-Type": "application/json"}),
            400, None, ":predict malformed JSON")
    refused(s.post("/v1/models/cb:predict", data=b'{"User": {"id": "a"}, "_multi": [{"Action"\n',
                   headers={"Content-Type": "text/plain"}), 400, None, ":predict text/plain malformed JSON line")

    # Models that cannot rank.
    refused(s.post("/v1/models/cbtext:rank", json={"context": context("alice")}), 400, "vw_json", ":rank on a VW-text model")
    refused(s.post("/v1/models/cbadf:rank", json={"context": context("alice")}), 400, "action probabilities",
            ":rank on a --cb_adf model")
    # The --cb_adf model itself serves :predict (scores, not probabilities).
    r = s.predict("cbadf", [context("alice")])
    assert r.status_code == 200, r.text[:300]

    # Unknown models and routes.
    refused(s.post("/v1/models/nope:reward", json={"event_id": "x", "reward": 1}), 404, "nope", ":reward on an unknown model")
    refused(s.post("/v1/models/nope:rank", json={"context": context("alice")}), 404, "nope", ":rank on an unknown model")
    refused(s.post("/v1/models/nope:activate", json={"event_id": "x"}), 404, "nope", ":activate on an unknown model")
    refused(s.get("/v1/models/nope/loop"), 404, "nope", "GET /v1/models/nope/loop")
    for path in ("/v1/models/cb:rank", "/v1/models/cb:reward", "/v1/models/cb:activate"):
        r = s.get(path)
        assert r.headers.get("Allow") == "POST", (path, r.status_code, dict(r.headers))
        refused(r, 405, None, f"GET {path}")
    refused(s.post("/v1/models/cb/loop", json={}), 405, None, "POST /v1/models/cb/loop")

    # Boundaries that are fine: a 128-character event id, an integer reward, the text/plain rank body.
    doc = rank_ok(s, context("bob"), "x" * 128)
    assert doc["event_id"] == "x" * 128
    r = s.post("/v1/models/cb:reward", json={"event_id": "x" * 128, "reward": -3})
    assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text


# ---------------------------------------------------------------- 6. status and metrics
def test_loop_status_and_metrics_after_traffic(fresh_stack):
    s = fresh_stack
    st = loop_status(s)
    assert st["decisions"] == 0 and st["rewards"] == 0 and st["joined"] == 0 and st["pending"] == 0, st
    assert st["average_reward"] is None

    n = 12
    answered = {}
    for i in range(n):
        answered[f"m-{i}"] = rank_ok(s, context(USERS[i % 3]), f"m-{i}")
    sent = []
    for i in range(0, n, 2):
        reward_ok(s, f"m-{i}", float(i))
        sent.append(float(i))
    r = s.post("/v1/models/cb:reward", json={"rewards": [{"event_id": "m-1", "reward": 0.5},
                                                          {"event_id": "m-3", "reward": 1.5}]})
    assert r.status_code == 202 and r.json() == {"accepted": 2}, r.text
    sent += [0.5, 1.5]

    st = loop_status(s)
    assert st["decisions"] == n and st["rewards"] == len(sent), st
    assert math.isclose(st["reward_sum"], sum(sent), abs_tol=1e-9), st
    m = metric_samples(s)
    assert metric(m, "vwfcgi_loop_events_total", model="cb", kind="decision") == n, \
        {k: v for k, v in m.items() if k[0].startswith("vwfcgi_loop")}
    assert metric(m, "vwfcgi_loop_events_total", model="cb", kind="reward") == len(sent)
    assert math.isclose(metric(m, "vwfcgi_loop_reward_sum", model="cb"), sum(sent), abs_tol=1e-9)

    st = wait_until(lambda: (lambda x: x if x["joined"] == n and x["pending"] == 0 else None)(loop_status(s)),
                    JOIN_BOUND, step=0.1)
    assert st, f"not joined within {JOIN_BOUND}s: {loop_status(s)}"
    per_event = {i: [] for i in answered}
    for i in range(0, n, 2):
        per_event[f"m-{i}"].append(float(i))
    per_event["m-1"].append(0.5)
    per_event["m-3"].append(1.5)
    logged_rewards = [sum(v) if v else DEFAULT_REWARD for v in per_event.values()]
    assert math.isclose(st["average_reward"], sum(logged_rewards) / n, abs_tol=1e-9), st
    assert st["decisions"] == n and st["rewards"] == len(sent)

    m = metric_samples(s)
    assert metric(m, "vwfcgi_loop_joined_total", model="cb") == n
    assert metric(m, "vwfcgi_loop_pending_events", model="cb") == 0
    assert metric(m, "vwfcgi_loop_events_total", model="cb", kind="decision") == n
    assert metric(m, "vwfcgi_loop_events_total", model="cb", kind="reward") == len(sent)
    assert len(joined_lines(s.state_dir)) == n


def test_an_unwritable_event_log_answers_503_and_predict_is_unaffected(loop_models, tmp_path):
    """SPEC §8.4: disk full or unwritable -> rank/reward answer 503 with a clear error; :predict serves on.

    As root, permissions cannot make a directory unwritable, so the state directory is a regular file:
    the log's directory cannot be created under it."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be\n")
    stack = Stack(loop_models, state_dir=blocker).start()
    try:
        ctx = context("alice")
        for _ in range(2):
            r = rank(stack, ctx, "e-unwritable")
            body = assert_json_error(r, 503, contains="cannot log the event")
            assert r.headers.get("Retry-After"), body
            r = stack.post("/v1/models/cb:reward", json={"event_id": "e-unwritable", "reward": 1.0})
            assert_json_error(r, 503, contains="cannot log the event")
            r = stack.predict("cb", [ctx])
            assert r.status_code == 200, r.text
            assert len(r.json()["predictions"][0]) == ACTIONS
        assert blocker.read_text() == "a file where the state directory should be\n"
    finally:
        stack.stop()


def test_two_instances_sharing_a_state_directory_join_each_event_once(loop_models, tmp_path_factory):
    """SPEC §8.4: several instances may write into one state directory; a decision logged by one and
    rewarded through the other is joined once, with its reward, by whichever instance holds the join lock."""
    state = tmp_path_factory.mktemp("shared-state")
    first = Stack(loop_models, state_dir=state, instance_id="pod-a").start()
    second = None
    try:
        second = Stack(loop_models, state_dir=state, instance_id="pod-b").start()
        decided = {}
        for n in range(40):
            stack = first if n % 2 == 0 else second
            decided[f"shared-{n}"] = rank_ok(stack, context(USERS[n % 3]), f"shared-{n}")
        for n in range(0, 40, 4):
            # The reward reaches the other instance than the decision did.
            reward_ok(second if n % 2 == 0 else first, f"shared-{n}", 1.0)

        def all_joined():
            ids = [line["EventId"] for line in joined_lines(state)]
            return len(ids) >= len(decided) and ids
        ids = wait_until(all_joined, JOIN_BOUND)
        assert ids, f"not every decision was joined: {sorted(set(decided) - {l['EventId'] for l in joined_lines(state)})}"
        time.sleep(2 * REWARD_WAIT)  # a second joiner would have written its duplicates by now
        lines = joined_lines(state)
        counts = Counter(line["EventId"] for line in lines)
        assert counts == Counter(decided.keys()), f"joined more or less than once: {counts - Counter(decided.keys())}"
        for line in lines:
            rewarded = int(line["EventId"].split("-")[1]) % 4 == 0
            assert line["_label_cost"] == (-1.0 if rewarded else -DEFAULT_REWARD), line
            assert line["_labelIndex"] == decided[line["EventId"]]["action"], line
        segments = sorted(p.name for p in (state / "cb" / "log").iterdir())
        assert any(name.startswith("pod-a-") for name in segments) and any(name.startswith("pod-b-") for name in segments), segments
    finally:
        if second:
            second.stop()
        first.stop()
