"""The learning loop, learn + publish (SPEC §8.6–8.8; issue 13): a contextual-bandit model keeps
learning from its own traffic with the real vw and is republished through the ordinary swap.

Every expected model is trained here, offline, by the real vw (`bin/vw -i <base> --dsjson -d <the
joined lines> --save_resume -f <ref>`) on the joined lines the server wrote, in join order, and the
served PMFs must equal the reference's to 1e-6 (`--softmax` exploration: the PMFs are continuous, so
a model that learned one event more or less, or twice, answers differently).

All waits are liveness bounds (`wait_until`), never performance assertions.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from conftest import REFERENCE_VW, ROOT, VWFCGI_BIN, HTTP_TIMEOUT, Stack, free_port, wait_until

USERS = ["u0", "u1", "u2", "u3"]
ACTIONS = 4
BEST = {"u0": 2, "u1": 0, "u2": 3, "u3": 1}
LEARNER = ["--cb_explore_adf", "--softmax", "--lambda", "8", "-q", "UA"]
LEARN_BOUND = 90.0  # liveness bound for "an update was published"


def context(user: str) -> dict:
    return {"User": {"id": user}, "_multi": [{"Action": {"t": f"a{k}"}} for k in range(ACTIONS)]}


def make_model_dir(path: Path, *, loop: dict, name: str = "cb", events: int = 8) -> Path:
    """A base with little signal: a few events, every reward 0 (`events` changes its bytes)."""
    path.mkdir(parents=True, exist_ok=True)
    seed = path / f"{name}.seed.dsjson"
    with seed.open("w") as f:
        for i in range(events):
            a = i % ACTIONS
            f.write(json.dumps({
                "_label_cost": 0, "_label_probability": 0.25, "_label_Action": a + 1, "_labelIndex": a, "o": [],
                "a": [a + 1] + [k + 1 for k in range(ACTIONS) if k != a], "p": [0.25] * ACTIONS,
                "c": context(USERS[i % len(USERS)]), "EventId": f"seed{i}",
            }) + "\n")
    subprocess.run([REFERENCE_VW, "--dsjson", *LEARNER, "-d", str(seed), "-f", str(path / f"{name}.vw"), "--quiet"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    seed.unlink()
    (path / f"{name}.json").write_text(json.dumps({"input": "vw_json", "loop": loop}) + "\n")
    return path


def send_events(stack: Stack, count: int, prefix: str, seed: int = 1, model: str = "cb") -> list[tuple[str, bool]]:
    """`count` rank + reward pairs (reward 1 for the user's best action, else 0); returns (event id, was best)."""
    rng = random.Random(seed)
    users = [rng.choice(USERS) for _ in range(count)]

    def one(i: int) -> tuple[str, bool]:
        session = one.sessions.setdefault(os.getpid(), requests.Session())
        event_id = f"{prefix}-{i}"
        user = users[i]
        r = session.post(stack.url(f"/v1/models/{model}:rank"), json={"event_id": event_id, "context": context(user)},
                         timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, f"rank: {r.status_code} {r.text[:300]!r}"
        best = r.json()["action"] == BEST[user]
        r = session.post(stack.url(f"/v1/models/{model}:reward"), json={"event_id": event_id, "reward": 1.0 if best else 0.0},
                         timeout=HTTP_TIMEOUT)
        assert r.status_code == 202, f"reward: {r.status_code} {r.text[:300]!r}"
        return event_id, best

    one.sessions = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def loop_status(stack: Stack, model: str = "cb") -> dict:
    r = stack.get(f"/v1/models/{model}/loop")
    assert r.status_code == 200, f"loop status: {r.status_code} {r.text[:300]!r}"
    return r.json()


def model_status(stack: Stack, model: str = "cb") -> dict:
    r = stack.get(f"/v1/models/{model}")
    assert r.status_code == 200, r.text
    return r.json()


def joined_lines(state: Path, model: str = "cb") -> list[str]:
    directory = state / model / "joined"
    files = sorted((p for p in directory.glob("*.dsjson") if p.stem.isdigit()), key=lambda p: int(p.stem))
    return [line for p in files for line in p.read_text().splitlines() if line]


def served_pmfs(stack: Stack, model: str = "cb") -> tuple[str, list[list[tuple[int, float]]]]:
    """The served version and each user's PMF (`:predict` with the VW JSON contexts)."""
    r = stack.post(f"/v1/models/{model}:predict", json={"instances": [context(u) for u in USERS]})
    assert r.status_code == 200, r.text
    doc = r.json()
    return doc["version"], [[(int(item["action"]), float(item["probability"])) for item in p] for p in doc["predictions"]]


def reference_pmfs(base: Path, lines: list[str], tmp: Path) -> list[list[tuple[int, float]]]:
    """The offline reference: the real vw continues `base` on `lines` with --save_resume, then answers -t --json."""
    data, ref, contexts, out = tmp / "ref.dsjson", tmp / "ref.vw", tmp / "ctx.json", tmp / "ref.txt"
    data.write_text("".join(line + "\n" for line in lines))
    model = base
    if lines:
        subprocess.run([REFERENCE_VW, "-i", str(base), "--dsjson", "-d", str(data), "--save_resume", "-f", str(ref),
                        "--quiet"], check=True, timeout=120, stdin=subprocess.DEVNULL)
        model = ref
    contexts.write_text("".join(json.dumps(context(u)) + "\n" for u in USERS))
    subprocess.run([REFERENCE_VW, "-i", str(model), "-t", "--json", "-d", str(contexts), "-p", str(out), "--quiet"],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)
    pmfs = [[(int(a), float(p)) for a, p in (pair.split(":") for pair in line.split()[0].split(","))]
            for line in out.read_text().splitlines() if line.strip()]
    assert len(pmfs) == len(USERS)
    return pmfs


def assert_same_pmfs(got, want, what: str) -> None:
    for user, g, w in zip(USERS, got, want):
        assert [a for a, _ in g] == [a for a, _ in w], f"{what}, {user}: actions {g} != reference {w}"
        for (a, p), (_, q) in zip(g, w):
            assert abs(p - q) <= 1e-6, f"{what}, {user}: action {a} probability {p} != reference {q}"


def settled(stack: Stack, state: Path, *, min_events: int, bound: float = LEARN_BOUND) -> dict:
    """Waits until nothing is pending and fewer than `min_events` joined lines are left unlearned (so no
    update is due any more), the same for two looks 1.5 update intervals apart; returns the loop status."""
    def quiet():
        status = loop_status(stack)
        lines = joined_lines(state)
        if status["pending"] or not lines or status["learned_events"] == 0 \
                or len(lines) - status["learned_events"] >= min_events:
            return None
        time.sleep(1.5)
        return status if loop_status(stack) == status else None
    status = wait_until(quiet, bound, step=0.2)
    assert status, f"the loop did not settle within {bound} s: {loop_status(stack)}, {len(joined_lines(state))} joined lines"
    assert status["learned_events"] <= len(joined_lines(state))
    return status


def assert_serves_reference(stack: Stack, base: Path, state: Path, tmp: Path, what: str) -> None:
    """The served model equals the offline continuation of `base` on the first learned_events joined lines."""
    for _ in range(20):
        status = loop_status(stack)
        version, got = served_pmfs(stack)
        if version == status["learned_version"] and loop_status(stack)["learned_version"] == version:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the served version never matched the loop's learned version: {status}")
    lines = joined_lines(state)[: status["learned_events"]]
    assert_same_pmfs(got, reference_pmfs(base, lines, tmp), what)


LOOP = {"update_interval": "1s", "min_events": 50, "reward_wait": "1s", "default_reward": 0.0}


# ---------------------------------------------------------------- simulation + fidelity
def test_the_model_learns_each_users_best_action_and_equals_vws_offline_continuation(tmp_path):
    models = make_model_dir(tmp_path / "models", loop=LOOP)
    base = tmp_path / "base.vw"
    base.write_bytes((models / "cb.vw").read_bytes())
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        first_version = model_status(stack)["version"]
        assert model_status(stack)["origin"] == "file"
        before = send_events(stack, 400, "warm", seed=1)
        rate_before = sum(best for _, best in before) / len(before)
        after = send_events(stack, 1600, "sim", seed=2)
        status = settled(stack, state, min_events=LOOP["min_events"])
        assert status["updates"] >= 1, status
        assert status["last_update"], status
        doc = model_status(stack)
        assert doc["version"] != first_version and doc["origin"] == "learned", doc
        assert doc["base_version"] == first_version and doc["learned_events"] == status["learned_events"], doc
        version, pmfs = served_pmfs(stack)
        for user, pmf in zip(USERS, pmfs):
            top = max(pmf, key=lambda pair: pair[1])[0]
            assert top == BEST[user], f"{user}: the largest probability is on action {top}, not {BEST[user]}: {pmf}"
        assert_serves_reference(stack, base, state, tmp_path, "after the simulation")
        rate_after = sum(best for _, best in after[-400:]) / 400
        print(f"\nbest-action rate: first 400 decisions {rate_before:.3f}, last 400 {rate_after:.3f}; "
              f"updates {status['updates']}, learned {status['learned_events']}, ips {status['ips_estimate']}, "
              f"logged average {status['average_reward']}")
        assert status["ips_estimate"] is not None and status["last_update_logged_average"] is not None, status
        metrics = stack.get("/metrics").text
        assert f'vwfcgi_loop_updates_total{{model="cb",result="ok"}} {status["updates"]}' in metrics, metrics[-3000:]
        assert 'vwfcgi_loop_learned_events{model="cb"}' in metrics
    finally:
        problems = stack.stop()
    assert not problems, problems


def test_a_backlog_is_learned_a_bounded_piece_per_update_and_equals_vws_offline_continuation(tmp_path):
    """--max-update-bytes bounds what one update reads (a trainer that failed for a day must not read the day's
    events at once): with 1 byte, each update learns exactly one joined file, and the pieces together learn what
    one pass would, VW's --save_resume continuation."""
    loop = {**LOOP, "min_events": 1, "gate": None}
    models = make_model_dir(tmp_path / "models", loop=loop)
    base = tmp_path / "base.vw"
    base.write_bytes((models / "cb.vw").read_bytes())
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state, extra_args=("--max-update-bytes", "1")).start()
    try:
        for round in range(3):
            send_events(stack, 60, f"piece{round}", seed=round + 1)
            time.sleep(0.6)
        status = settled(stack, state, min_events=1)
        files = sorted(p for p in (state / "cb" / "joined").glob("*.dsjson") if p.stem.isdigit())
        assert len(files) >= 3, files
        assert status["learned_events"] == len(joined_lines(state)) == 180, status
        assert status["updates"] == len(files), (status, [p.name for p in files])
        assert_serves_reference(stack, base, state, tmp_path, "learned one joined file per update")
    finally:
        assert not stack.stop()


def learned_once(tmp_path: Path, prefix: str, seed: int) -> tuple[Path, Path, Path, Stack, dict]:
    """A running stack whose model learned from 300 events: (models, a copy of the base file, state, stack, status)."""
    models = make_model_dir(tmp_path / "models", loop=LOOP)
    base = tmp_path / "base.vw"
    base.write_bytes((models / "cb.vw").read_bytes())
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        send_events(stack, 300, prefix, seed=seed)
        return models, base, state, stack, settled(stack, state, min_events=LOOP["min_events"])
    except BaseException:
        stack.stop(check=False)
        raise


def test_a_settings_edit_keeps_the_learned_model_and_learning_continues(tmp_path):
    """Only the .json changes (as an operator's edit or Personalizer's PUT configurations/service does): the new
    version serves the learned model with the new settings, and learning continues from it, not from the file."""
    models, base, state, stack, learned = learned_once(tmp_path, "s1", 5)
    try:
        before = model_status(stack)
        assert before["origin"] == "learned", before
        (models / "cb.json").write_text(json.dumps({"input": "vw_json", "loop": {**LOOP, "default_reward": 0.25}}) + "\n")
        edited = wait_until(lambda: model_status(stack)["version"] != before["version"] and model_status(stack), 30, step=0.1)
        assert edited and edited["origin"] == "learned", (before, edited)
        assert loop_status(stack)["settings"]["default_reward"] == 0.25
        assert loop_status(stack)["learned_events"] == learned["learned_events"]
        assert_serves_reference(stack, base, state, tmp_path, "after a .json edit")
        send_events(stack, 200, "s2", seed=6)
        status = settled(stack, state, min_events=LOOP["min_events"])
        assert status["learned_events"] > learned["learned_events"], (learned, status)
        assert_serves_reference(stack, base, state, tmp_path, "learning continued after a .json edit")
        # Rollbacks walk back through what was learned before and after the edit, down to the base file.
        for _ in range(20):
            version = model_status(stack)["version"]
            r = stack.post("/v1/models/cb/loop:rollback")
            assert r.status_code == 202, r.text
            if not wait_until(lambda: model_status(stack)["version"] != version, 15, step=0.1):
                break
        assert "no earlier version" in (loop_status(stack)["last_error"] or ""), loop_status(stack)
        assert_same_pmfs(served_pmfs(stack)[1], reference_pmfs(base, [], tmp_path), "rolled back to the base")
    finally:
        problems = stack.stop()
    assert not problems, problems


def test_a_restart_resumes_the_learned_model_and_a_dropped_file_becomes_the_new_base(tmp_path):
    models, base, state, stack, learned = learned_once(tmp_path, "r1", 3)
    assert not stack.stop()
    stack = Stack(models, state_dir=state).start()
    try:
        doc = model_status(stack)
        assert doc["origin"] == "learned" and doc["version"] == learned["learned_version"], (doc, learned)
        assert_serves_reference(stack, base, state, tmp_path, "after a restart")
        # The operator drops a new file: it serves at once, and learning continues from it with the later events.
        position = learned["learned_events"]
        new_base_dir = make_model_dir(tmp_path / "other", loop=LOOP, events=12)
        (models / "cb.vw.tmp").write_bytes((new_base_dir / "cb.vw").read_bytes())
        os.rename(models / "cb.vw.tmp", models / "cb.vw")
        dropped = wait_until(lambda: model_status(stack)["origin"] == "file" and model_status(stack), 30, step=0.1)
        assert dropped, model_status(stack)
        new_base = tmp_path / "new-base.vw"
        new_base.write_bytes((new_base_dir / "cb.vw").read_bytes())
        send_events(stack, 200, "r2", seed=4)
        status = settled(stack, state, min_events=LOOP["min_events"])
        doc = model_status(stack)
        assert doc["origin"] == "learned" and doc["base_version"] == dropped["version"], doc
        version, got = served_pmfs(stack)
        lines = joined_lines(state)[position: status["learned_events"]]
        assert len(lines) >= 200 - LOOP["min_events"]
        assert_same_pmfs(got, reference_pmfs(new_base, lines, tmp_path), "learned from the dropped file")
        # Removing the file unloads the model and stops its learning; its state stays on disk.
        os.unlink(models / "cb.vw")
        assert wait_until(lambda: stack.get("/v1/models/cb").status_code == 404, 30, step=0.1)
        assert (state / "cb" / "learn-state.json").exists() and joined_lines(state)
        assert stack.post("/v1/models/cb:rank", json={"context": context("u0")}).status_code == 404
    finally:
        assert not stack.stop()


# ---------------------------------------------------------------- crashes
def trainer_running(stack: Stack) -> bool:
    """Whether a trainer vw (a child running with --save_resume) is alive under vwfcgi."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"--save_resume" in cmdline and ppid == stack.vwfcgi.pid:
            return True
    return False


def test_kill_9_during_updates_neither_learns_an_event_twice_nor_skips_one(tmp_path):
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "min_events": 20})
    base = tmp_path / "base.vw"
    base.write_bytes((models / "cb.vw").read_bytes())
    state = tmp_path / "state"
    # The trainer's vw waits a little before it starts, so the kill lands while an update runs.
    slow = tmp_path / "slow-vw.sh"
    slow.write_text(f"#!/bin/sh\nsleep 0.5\nexec {REFERENCE_VW} \"$@\"\n")
    slow.chmod(0o755)
    extra = ("--trainer-vw-command", str(slow))
    killed_during_update = 0
    for round_ in range(3):
        stack = Stack(models, state_dir=state, extra_args=extra).start()
        try:
            send_events(stack, 120, f"k{round_}", seed=10 + round_)
            if wait_until(lambda: trainer_running(stack), 20, step=0.02):
                killed_during_update += 1
            os.kill(stack.vwfcgi.pid, signal.SIGKILL)
            stack.vwfcgi.wait(timeout=10)
        finally:
            stack.stop()
    assert killed_during_update >= 1, "no kill landed during an update"
    stack = Stack(models, state_dir=state, extra_args=extra).start()
    try:
        status = settled(stack, state, min_events=20)
        lines = joined_lines(state)
        ids = [json.loads(line)["EventId"] for line in lines]
        assert len(ids) == len(set(ids)) == 360, f"{len(ids)} joined lines, {len(set(ids))} distinct, 360 events sent"
        assert status["learned_events"] > 360 - 20, status
        assert_serves_reference(stack, base, state, tmp_path, "after kill -9 during updates")
    finally:
        assert not stack.stop()


def test_a_learned_model_that_fails_its_probe_never_replaces_the_serving_one(tmp_path):
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "min_events": 10})
    state = tmp_path / "state"
    # A broken trainer: exits 0 after writing garbage where the model should be (its one writable file).
    broken = tmp_path / "broken-vw.sh"
    broken.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -f ] && printf "not a model" > "$2"; shift; done\nexit 0\n')
    broken.chmod(0o755)
    stack = Stack(models, state_dir=state, extra_args=("--trainer-vw-command", str(broken))).start()
    try:
        served = model_status(stack)["version"]
        _, before = served_pmfs(stack)
        send_events(stack, 60, "b", seed=5)
        status = wait_until(lambda: (s := loop_status(stack))["failed_updates"] >= 1 and s, 30, step=0.2)
        assert status, loop_status(stack)
        assert status["updates"] == 0 and status["learned_events"] == 0 and status["learned_version"] is None, status
        assert "does not load" in status["last_error"], status
        doc = model_status(stack)
        assert doc["version"] == served and doc["origin"] == "file", doc
        version, after = served_pmfs(stack)
        assert version == served and after == before
        metrics = stack.get("/metrics").text
        assert 'vwfcgi_loop_updates_total{model="cb",result="failed"}' in metrics
        assert 'vwfcgi_loop_updates_total{model="cb",result="ok"} 0' in metrics
    finally:
        assert not stack.stop()


# ---------------------------------------------------------------- many replicas
def test_the_external_trainer_learns_both_instances_logs_and_publishes_into_the_model_directory(tmp_path):
    external = {**LOOP, "trainer": "external", "min_events": 20}
    models = make_model_dir(tmp_path / "models", loop=external)
    base = tmp_path / "base.vw"
    base.write_bytes((models / "cb.vw").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    for f in ("cb.vw", "cb.json"):
        (out / f).write_bytes((models / f).read_bytes())
    state = tmp_path / "state"
    a = Stack(models, state_dir=state, instance_id="pod-a").start()
    b = Stack(models, state_dir=state, instance_id="pod-b").start()
    trainer = None
    try:
        send_events(a, 150, "a", seed=6)
        send_events(b, 150, "b", seed=7)
        for stack in (a, b):  # serving instances only decide and log
            status = loop_status(stack)
            assert status["updates"] == 0 and status["joined"] == 0, status
        logs = sorted(p.name for p in (state / "cb" / "log").iterdir())
        assert any(n.startswith("pod-a-") for n in logs) and any(n.startswith("pod-b-") for n in logs), logs
        log = open(tmp_path / "trainer.log", "wb")
        metrics_port = free_port()
        trainer = subprocess.Popen([str(VWFCGI_BIN), "train", "--state", str(state), "--models", str(out),
                                    "--vw-command", REFERENCE_VW, "--metrics-listen", f"127.0.0.1:{metrics_port}"],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        published = base.read_bytes()

        def learned_everything():
            learn_state = state / "cb" / "learn-state.json"
            if not learn_state.exists():
                return None
            doc = json.loads(learn_state.read_text())
            return doc if doc["learned_events"] == 300 and (out / "cb.vw").read_bytes() != published else None

        doc = wait_until(learned_everything, LEARN_BOUND, step=0.2)
        assert doc, (tmp_path / "trainer.log").read_text()[-3000:]
        model = (out / "cb.vw").read_bytes()
        digest = (out / "cb.sha256").read_text().split()[0]
        assert digest == hashlib.sha256(model).hexdigest()
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")], list(out.iterdir())
        lines = joined_lines(state)
        assert len(lines) == 300
        assert {json.loads(line)["EventId"].split("-")[0] for line in lines} == {"a", "b"}
        # The published model equals the offline continuation of the base on both instances' joined events.
        contexts, pred = tmp_path / "ctx.json", tmp_path / "pub.txt"
        contexts.write_text("".join(json.dumps(context(u)) + "\n" for u in USERS))
        subprocess.run([REFERENCE_VW, "-i", str(out / "cb.vw"), "-t", "--json", "-d", str(contexts), "-p", str(pred),
                        "--quiet"], check=True, timeout=60, stdin=subprocess.DEVNULL)
        got = [[(int(x), float(y)) for x, y in (pair.split(":") for pair in line.split(","))]
               for line in pred.read_text().splitlines() if line.strip()]
        assert_same_pmfs(got, reference_pmfs(base, lines, tmp_path), "the external trainer's model")
        # The trainer's own /metrics (issue 20 item 9): its updates, learned events and joins.
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=HTTP_TIMEOUT)
        assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain"), metrics.text[:300]
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.text.splitlines()
                  if line.startswith("vwfcgi_loop_")}
        assert values.get('vwfcgi_loop_updates_total{model="cb",result="ok"}', 0) >= 1, metrics.text[:3000]
        assert values.get('vwfcgi_loop_learned_events{model="cb"}') == 300, metrics.text[:3000]
        assert values.get('vwfcgi_loop_joined_total{model="cb"}') == 300, metrics.text[:3000]
        assert requests.get(f"http://127.0.0.1:{metrics_port}/other", timeout=HTTP_TIMEOUT).status_code == 404
        assert requests.post(f"http://127.0.0.1:{metrics_port}/metrics", timeout=HTTP_TIMEOUT).status_code == 405
        # A pod whose sidecar delivers it serves it.
        (models / "cb.sha256").write_text((out / "cb.sha256").read_text())
        (models / "cb.vw.tmp").write_bytes(model)
        os.rename(models / "cb.vw.tmp", models / "cb.vw")
        assert wait_until(lambda: served_pmfs(a)[1] == got, 30, step=0.1), "pod a does not serve the published model"
    finally:
        if trainer:
            trainer.send_signal(signal.SIGTERM)
            try:
                trainer.wait(timeout=20)
            except subprocess.TimeoutExpired:
                trainer.kill()
                pytest.fail("vwfcgi train did not stop on SIGTERM")
        problems = a.stop() + b.stop()
    assert not problems, problems
    assert trainer.returncode == 0, (tmp_path / "trainer.log").read_text()[-3000:]


# ---------------------------------------------------------------- :learn
def test_learn_counts_against_the_feature_budget_like_predict(tmp_path):
    """:learn's examples go through the same batch preparation as :predict's: with the model's interactions
    (-q ff: 7 feature computations for `|f a b`), a request over --max-interaction-features is a 413 naming the
    limit, for :learn as for :predict, and nothing of it is logged."""
    models = tmp_path / "models"
    models.mkdir()
    seed = tmp_path / "seed.txt"
    seed.write_text("".join(f"{i % 2} |f a:{i % 3} b:{i % 2}\n" for i in range(10)))
    subprocess.run([REFERENCE_VW, "-q", "ff", "-d", str(seed), "-f", str(models / "inter.vw"), "--quiet"], check=True,
                   timeout=60, stdin=subprocess.DEVNULL)
    (models / "inter.json").write_text(json.dumps({"loop": {"update_interval": "1h"}}) + "\n")
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state, extra_args=("--max-interaction-features", "400")).start()
    try:
        fits, over = ["1 |f a:1 b:1"] * 50, ["1 |f a:1 b:1"] * 100
        r = stack.post("/v1/models/inter:learn", json={"instances": fits})
        assert r.status_code == 202 and r.json() == {"accepted": 50}, r.text
        for verb, lines in (("learn", over), ("predict", [line[2:] for line in over])):
            r = stack.post(f"/v1/models/inter:{verb}", json={"instances": lines})
            assert r.status_code == 413 and "400" in r.json()["error"] and "max-interaction-features" in r.json()["error"], (verb, r.text)
        assert stack.get("/v1/models/inter/loop").json()["learns"] == 50
    finally:
        assert not stack.stop()


def test_learn_moves_a_linear_model_toward_its_labels_and_equals_vws_offline_continuation(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    seed = tmp_path / "seed.txt"
    seed.write_text("".join(f"0 |f a:{i % 3} b:{i % 2}\n" for i in range(10)))
    subprocess.run([REFERENCE_VW, "-d", str(seed), "-f", str(models / "lin.vw"), "--quiet"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    (models / "lin.json").write_text(json.dumps({"loop": {"update_interval": "1s", "min_events": 10}}) + "\n")
    (models / "plain.vw").write_bytes((models / "lin.vw").read_bytes())  # no loop: cannot :learn
    base = tmp_path / "base.vw"
    base.write_bytes((models / "lin.vw").read_bytes())
    state = tmp_path / "state"
    probe = ["|f a:1 b:1", "|f a:2 b:0"]
    stack = Stack(models, state_dir=state).start()
    try:
        def predictions() -> list[float]:
            r = stack.post("/v1/models/lin:predict", json={"instances": probe})
            assert r.status_code == 200, r.text
            return [float(p) for p in r.json()["predictions"]]

        before = predictions()
        rng = random.Random(8)
        sent = []
        for batch in range(4):
            lines = []
            for _ in range(50):
                a, b = rng.randrange(3), rng.randrange(2)
                lines.append(f"{2 * a + b + 1} |f a:{a} b:{b}")
            if batch % 2:
                r = stack.post("/v1/models/lin:learn", data="\n".join(lines) + "\n", headers={"Content-Type": "text/plain"})
            else:
                r = stack.post("/v1/models/lin:learn", json={"instances": lines})
            assert r.status_code == 202 and r.json() == {"accepted": 50}, r.text
            sent += lines
        # Bad requests: a clear 400, nothing logged, and the model still answers.
        for path, body, why in [
            ("/v1/models/lin:learn", {"instances": ["|f a:1"]}, "needs a label"),
            ("/v1/models/lin:learn", {"instances": ["1 |f a:1\n2 |f b:1"]}, "newline"),
            ("/v1/models/lin:learn", {"instances": [{"f": 1}]}, "string"),
            ("/v1/models/lin:learn", {"instances": ["x y z w |f a:1"]}, "label"),
            ("/v1/models/plain:learn", {"instances": ["1 |f a:1"]}, "loop"),
        ]:
            r = stack.post(path, json=body)
            assert r.status_code == 400 and "error" in r.json(), (path, body, r.status_code, r.text)
            assert why in r.json()["error"], r.json()
            assert len(predictions()) == 2
        r = stack.post("/v1/models/nope:learn", json={"instances": ["1 |f a:1"]})
        assert r.status_code == 404 and "nope" in r.json()["error"], r.text
        def learned_all():
            s = stack.get("/v1/models/lin/loop").json()
            return s if s["learned_events"] == 200 and s["learns"] == 200 else None
        status = wait_until(learned_all, LEARN_BOUND, step=0.2)
        assert status, stack.get("/v1/models/lin/loop").json()
        joined = [json.loads(line)["Learn"] for line in joined_lines(state, "lin")]
        assert sorted(joined) == sorted(sent) and len(joined) == 200
        after = predictions()
        targets = [2 * 1 + 1 + 1, 2 * 2 + 0 + 1]
        for b, a, t in zip(before, after, targets):
            assert abs(a - t) < abs(b - t), f"prediction {b} -> {a} did not move toward {t}"
        data, ref, out, inputs = tmp_path / "learn.txt", tmp_path / "ref.vw", tmp_path / "ref.txt", tmp_path / "probe.txt"
        data.write_text("".join(line + "\n" for line in joined))
        subprocess.run([REFERENCE_VW, "-i", str(base), "-d", str(data), "--save_resume", "-f", str(ref), "--quiet"],
                       check=True, timeout=60, stdin=subprocess.DEVNULL)
        inputs.write_text("".join(line + "\n" for line in probe))
        subprocess.run([REFERENCE_VW, "-i", str(ref), "-t", "-d", str(inputs), "-p", str(out), "--quiet"],
                       check=True, timeout=60, stdin=subprocess.DEVNULL)
        want = [float(line) for line in out.read_text().split()]
        assert all(abs(g - w) <= 1e-6 for g, w in zip(after, want)), (after, want)
        metrics = stack.get("/metrics").text
        assert 'vwfcgi_loop_events_total{kind="learn",model="lin"} 200' in metrics or \
               'vwfcgi_loop_events_total{model="lin",kind="learn"} 200' in metrics, metrics[-2000:]
    finally:
        assert not stack.stop()
