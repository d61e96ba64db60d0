"""The learning loop under attack (issue 18; SPEC §8.9): no client can crash it, poison the model every client is
served, or flood its memory and disk, and the state directory cannot be turned against the host.

Each test plays one attack from the issue against a real nginx + vwfcgi + sandboxed vw and asserts that the harm is
absent: the server answers (across restarts), the published model is finite and unchanged when it should be, memory
and bytes written stay within the stated bounds, nothing outside the state directory is touched, and the status
says what happened. Waits are liveness bounds; the bounds asserted are memory and byte counts, never durations.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import HTTP_TIMEOUT, Stack, wait_until
from test_learning import (LOOP, context, joined_lines, loop_status, make_model_dir, model_status, send_events,
                           served_pmfs)

JOIN_BOUND = 30.0


def vwfcgi_rss_kb(stack: Stack) -> int:
    for line in Path(f"/proc/{stack.vwfcgi.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def vwfcgi_io(stack: Stack) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split(": ") for line in Path(f"/proc/{stack.vwfcgi.pid}/io").read_text().splitlines())}


def alive(stack: Stack, samples: int = 5) -> None:
    """vwfcgi runs and /healthz answers 200 each of `samples` times, in under 1 s (the issue's bound) at the median: a
    /healthz takes about a millisecond, so the median fails only when an attack starves it, not on a loaded CI
    machine's one slow request."""
    assert stack.vwfcgi.poll() is None, "vwfcgi died\n" + stack.logs()
    seconds = []
    for _ in range(samples):
        started = time.monotonic()
        r = stack.get("/healthz")
        seconds.append(time.monotonic() - started)
        assert r.status_code == 200, r.text
    assert statistics.median(seconds) < 1.0, seconds


def restart(stack: Stack) -> Stack:
    problems = stack.stop()
    assert not problems, problems
    again = Stack(stack.model_dir, state_dir=stack.state_dir, instance_id=stack.instance_id,
                  extra_args=tuple(stack.extra_args)).start()
    return again


def rank(stack: Stack, event_id: str, user: str = "u0", model: str = "cb", **extra) -> dict:
    r = stack.post(f"/v1/models/{model}:rank", json={"event_id": event_id, "context": context(user), **extra})
    assert r.status_code == 200, f"rank: {r.status_code} {r.text[:300]!r}"
    return r.json()


def joined_ids(state: Path, model: str = "cb") -> list[str]:
    return [json.loads(line)["EventId"] for line in joined_lines(state, model)]


# ---------------------------------------------------------------- values have a domain
def test_rewards_outside_the_range_are_refused_and_huge_sums_never_crash(tmp_path):
    """Two rewards of 1e308 for one event summed to +inf and trapped the joiner at every start (2 requests, a crash
    loop). Now: outside the model's reward_range a reward is a 400 naming the range; inside a wide range the sum is
    clipped to it, written finite, and the server comes up across two restarts."""
    wide = {**LOOP, "update_interval": "1h", "reward_range": [-1e308, 1e308]}
    models = make_model_dir(tmp_path / "models", loop=wide)
    make_model_dir(tmp_path / "models", loop={**LOOP, "update_interval": "1h"}, name="narrow")
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        r = stack.post("/v1/models/narrow:reward", json={"event_id": "x", "reward": 1e300})
        assert r.status_code == 400 and "reward_range [-1.0, 1.0]" in r.json()["error"], r.text
        r = stack.post("/v1/models/narrow:reward", json={"rewards": [{"event_id": "x", "reward": 0.5},
                                                                    {"event_id": "y", "reward": -1.5}]})
        assert r.status_code == 400 and "reward 1" in r.json()["error"], r.text
        assert loop_status(stack, "narrow")["rewards"] == 0  # nothing of a refused batch was logged
        rank(stack, "e1")
        r = stack.post("/v1/models/cb:reward", json={"rewards": [{"event_id": "e1", "reward": 1e308},
                                                                {"event_id": "e1", "reward": 1e308}]})
        assert r.status_code == 202, r.text
        assert wait_until(lambda: "e1" in joined_ids(state), JOIN_BOUND, step=0.2), loop_status(stack)
        line = json.loads(joined_lines(state)[0])
        assert line["_label_cost"] == -1e308 and all(math.isfinite(o["v"]) for o in line["o"]), line
        alive(stack)
        for _ in range(2):
            stack = restart(stack)
            alive(stack)
            assert loop_status(stack)["settings"]["reward_range"] == [-1e308, 1e308]
        rank(stack, "e2")
        assert wait_until(lambda: "e2" in joined_ids(state), JOIN_BOUND, step=0.2)
        assert joined_ids(state).count("e1") == 1
    finally:
        assert not stack.stop()


def test_learn_values_outside_their_bounds_are_refused(tmp_path):
    """`1 1e30 |a x:1e30` (202 before) made a regression model answer one constant for good."""
    import subprocess
    from conftest import REFERENCE_VW
    models = tmp_path / "models"
    models.mkdir()
    data = tmp_path / "lin.txt"
    data.write_text("".join(f"{i % 3} |a x:{i / 10} |b y:{i % 5}\n" for i in range(40)))
    subprocess.run([REFERENCE_VW, "-d", str(data), "-f", str(models / "lin.vw"), "--quiet"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    (models / "lin.json").write_text(json.dumps({"loop": {"update_interval": "1h", "max_abs_label": 100}}) + "\n")
    stack = Stack(models, state_dir=tmp_path / "state").start()
    try:
        for line, why in [("1 1e30 |a x:1e30 |b y:1e30", "importance weight"), ("1 |a x:1e30", "feature value"),
                          ("1e7 |a x:1", "label"), ("1 1 1e9 |a x:1", "initial value"), ("1 |a:2000000 x:1", None),
                          ("1 |a x:nan", None), ("1 |a x:1e999", None), ("-1 -2 |a x:1", None)]:
            r = stack.post("/v1/models/lin:learn", json={"instances": [line]})
            assert r.status_code == 400, (line, r.status_code, r.text)
            if why:
                assert why in r.json()["error"], (line, r.text)
        assert loop_status(stack, "lin")["learns"] == 0
        r = stack.post("/v1/models/lin:learn", json={"instances": ["100 1000 |a x:1000000 |b y:-1e6", "0.5 |a x:2"]})
        assert r.status_code == 202, r.text
        r = stack.post("/v1/models/lin:predict", json={"instances": [" |a x:0.5 |b y:1"]})
        assert r.status_code == 200, r.text
    finally:
        assert not stack.stop()


# ---------------------------------------------------------------- the publish gate
def test_a_poisoned_update_is_rejected_kept_for_inspection_and_never_served(tmp_path):
    """One reward of 1e300 (with a range that admits it) made the trainer's weights NaN; the NaN model passed the
    probe and was published. The gate refuses it: the serving version stays, the candidate is kept under rejected/,
    counted and shown; later honest updates are published; loop:rollback goes back a version."""
    loop = {**LOOP, "min_events": 20, "reward_range": [-1e300, 1e300]}
    models = make_model_dir(tmp_path / "models", loop=loop)
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        served = model_status(stack)["version"]
        _, before = served_pmfs(stack)
        rank(stack, "poison")
        r = stack.post("/v1/models/cb:reward", json={"event_id": "poison", "reward": 1e300})
        assert r.status_code == 202, r.text
        send_events(stack, 30, "p", seed=3)
        status = wait_until(lambda: (s := loop_status(stack))["rejected_updates"] + s["failed_updates"] >= 1 and s, 90,
                            step=0.2)
        assert status, loop_status(stack)
        assert status["rejected_updates"] >= 1, status
        assert "publish gate" in status["last_error"], status
        assert model_status(stack)["version"] == served
        version, after = served_pmfs(stack)
        assert version == served and after == before
        assert all(math.isfinite(p) for pmf in after for _, p in pmf)
        assert list((state / "cb" / "rejected").glob("*.vw")) and list((state / "cb" / "rejected").glob("*.why"))
        assert 'vwfcgi_loop_updates_total{model="cb",result="rejected"}' in stack.get("/metrics").text
        # Honest traffic: the next update is published and answers finite PMFs.
        send_events(stack, 30, "h", seed=4)
        status = wait_until(lambda: (s := loop_status(stack))["updates"] >= 1 and s, 90, step=0.2)
        assert status, loop_status(stack)
        learned = status["learned_version"]
        version, pmfs = served_pmfs(stack)
        assert version == learned and all(math.isfinite(p) for pmf in pmfs for _, p in pmf)
        # Rollback: back to the base file's version.
        r = stack.post("/v1/models/cb/loop:rollback")
        assert r.status_code == 202, r.text
        assert wait_until(lambda: model_status(stack)["version"] == served, 30, step=0.2), model_status(stack)
        assert served_pmfs(stack) == (served, before)
        r = stack.post("/v1/models/cb/loop:rollback")
        assert r.status_code == 202
        assert wait_until(lambda: "no earlier version" in (loop_status(stack)["last_error"] or ""), 30, step=0.2)
        assert model_status(stack)["version"] == served
    finally:
        assert not stack.stop()


# ---------------------------------------------------------------- floods
def test_an_orphan_reward_flood_is_bounded_in_memory_and_capped(tmp_path):
    """100 × 10,000 rewards for unknown ids took vwfcgi from 15 to 509 MB and rewrote an 84 MB join state at every
    step. Orphans are now 64-bit keys with a tally, capped by max_orphans (oldest dropped and counted)."""
    loop = {**LOOP, "update_interval": "1h", "max_orphans": 150_000}
    models = make_model_dir(tmp_path / "models", loop=loop)
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    stop = threading.Event()
    healthz: list[int] = []
    seconds: list[float] = []

    def probe():
        session = requests.Session()
        while not stop.is_set():
            started = time.monotonic()
            healthz.append(session.get(stack.url("/healthz"), timeout=5).status_code)
            seconds.append(time.monotonic() - started)
            stop.wait(0.2)
    try:
        send_events(stack, 4, "warm")
        watcher = threading.Thread(target=probe)
        watcher.start()
        per = 10_000

        def flood(batches: range) -> dict:
            for b in batches:
                body = {"rewards": [{"event_id": f"orphan-{b}-{i}", "reward": 1} for i in range(per)]}
                r = stack.post("/v1/models/cb:reward", json=body)
                assert r.status_code == 202, r.text[:300]
            want = batches.stop * per
            status = wait_until(lambda: (s := loop_status(stack))["orphans"] + s["dropped_orphans"] >= want and s, 60, step=0.5)
            assert status, loop_status(stack)
            wait_until(lambda: False, 2.5, step=0.5)  # the join's next rounds give freed memory back (once a second)
            return status
        # The first 50 k pay for what any flood costs (buffers, the first table); the next 100 k show what orphans cost.
        flood(range(0, 5))
        before = vwfcgi_rss_kb(stack)
        flood(range(5, 15))
        per_100k_mb = (vwfcgi_rss_kb(stack) - before) / 1024
        status = flood(range(15, 20))
        stop.set()
        watcher.join()
        batches = 20
        assert status["orphans"] == 150_000 and status["dropped_orphans"] == batches * per - 150_000, status
        # 100,000 more orphans held: a few MB (an OrphanTable entry is ~34 bytes; measured 2-13 MB of RSS per 100 k (median ~7),
        # the spread being the allocator's; a dictionary of keys and tallies took ~150 bytes, the run ~500 and no cap).
        assert per_100k_mb <= 20, f"RSS grew {per_100k_mb:.1f} MB for 100 k orphans"
        assert healthz and all(code == 200 for code in healthz)
        # The bound, on the median so one scheduling hiccup of a loaded CI machine cannot fail it: a /healthz
        # takes about a millisecond, so this is a thousandfold margin, and it fails only when the flood starves it.
        assert statistics.median(seconds) < 1.0, sorted(seconds)[-5:]
        metrics = stack.get("/metrics").text
        assert f'vwfcgi_loop_dropped_total{{kind="orphan",model="cb"}} {batches * per - 150_000}' in metrics \
            or f'vwfcgi_loop_dropped_total{{model="cb",kind="orphan"}} {batches * per - 150_000}' in metrics, \
            [line for line in metrics.splitlines() if "dropped" in line]
        # Restarts restore the orphans from the journal/snapshot.
        stack = restart(stack)
        assert wait_until(lambda: loop_status(stack)["orphans"] == 150_000, JOIN_BOUND, step=0.2), loop_status(stack)
    finally:
        stop.set()
        assert not stack.stop()


def test_a_deferred_flood_writes_no_more_than_it_received(tmp_path):
    """Deferred decisions with huge contexts were copied into a join state rewritten at every step (67-83 MB/s for a
    day). Pending decisions are now references into the log: the server writes what it logs plus a small journal."""
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "update_interval": "1h"})
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        before = vwfcgi_io(stack)
        received = 0
        for i in range(20):
            ctx = context("u1")
            ctx["User"] = {f"f{k}": k for k in range(20_000)}
            body = json.dumps({"event_id": f"d{i}", "context": ctx, "deferred": True})
            received += len(body)
            r = stack.post("/v1/models/cb:rank", data=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text[:300]
        alive(stack)
        assert wait_until(lambda: loop_status(stack)["pending"] == 20, JOIN_BOUND, step=0.2), loop_status(stack)
        # A few more join steps (every 250 ms) with everything pending.
        wait_until(lambda: False, 3, step=0.5)
        written = vwfcgi_io(stack)["write_bytes"] - before["write_bytes"]
        journal = sum(p.stat().st_size for p in (state / "cb").glob("join-*"))
        assert journal < 64 * 1024, f"join state {journal} bytes for 20 pending decisions"
        assert written <= 1.2 * received + (1 << 20), f"wrote {written} bytes for {received} received"
    finally:
        assert not stack.stop()


# ---------------------------------------------------------------- the state directory
def test_the_state_directory_cannot_be_turned_against_the_host(tmp_path):
    """`learned` and `train/out` as symlinks to other directories (emptied and written before), a FIFO named like a
    segment (the joiner blocked in open() and GET …/loop, :predict and /healthz with it), a directory named like a
    segment (the join failed every round, silently)."""
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "min_events": 5})
    state = tmp_path / "state"
    victim, victim_out = tmp_path / "victim", tmp_path / "victim-out"
    for d in (victim, victim_out):
        d.mkdir()
        (d / "precious.vw").write_text("keep me\n")
    (state / "cb" / "log").mkdir(parents=True)
    (state / "cb" / "train").mkdir()
    os.symlink(victim, state / "cb" / "learned")
    os.symlink(victim_out, state / "cb" / "train" / "out")
    os.mkfifo(state / "cb" / "log" / "evil-1.dsjson")
    (state / "cb" / "log" / "dir-1.dsjson").mkdir()
    stack = Stack(models, state_dir=state).start()
    try:
        send_events(stack, 12, "s")
        assert wait_until(lambda: len(joined_ids(state)) == 12, JOIN_BOUND, step=0.2), loop_status(stack)
        for _ in range(5):
            alive(stack)
            assert stack.get("/v1/models/cb/loop").status_code == 200
            r = stack.post("/v1/models/cb:predict", json={"instances": [context("u0")]})
            assert r.status_code == 200, r.text
        status = wait_until(lambda: (s := loop_status(stack))["last_error"] and "refused" in s["last_error"] and s, 30,
                            step=0.2)
        assert status, loop_status(stack)
        assert status["skipped_lines"] >= 2 and status["updates"] == 0
        assert 'reason="not_regular"' in stack.get("/metrics").text
        stack = restart(stack)
        alive(stack)
        for d in (victim, victim_out):
            assert [p.name for p in d.iterdir()] == ["precious.vw"] and (d / "precious.vw").read_text() == "keep me\n"
    finally:
        assert not stack.stop()


def test_a_corrupt_join_state_is_moved_aside_and_every_event_is_joined_once(tmp_path):
    """A pending entry `"line":"{}"` in join-state.json passed restore and trapped the joiner at every start; a
    truncated one failed the join 4×/s forever with `/loop` saying nothing."""
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "update_interval": "1h"})
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        send_events(stack, 10, "a")
        assert wait_until(lambda: len(joined_ids(state)) == 10, JOIN_BOUND, step=0.2)
        rank(stack, "late", deferred=True)  # pending when the state is broken
        assert wait_until(lambda: loop_status(stack)["pending"] == 1, JOIN_BOUND, step=0.2)
        assert not stack.stop()
        snapshot = state / "cb" / "join-state.json"
        for garbage in ['{"version":1,"next_file":1,"next_order":0,"joined":0,"offsets":{},'
                        '"pending":[{"id":"x","order":0,"seen":0,"line":"{}","deferred":false,"activated":null,"rewards":[]}],'
                        '"orphans":[]}\n', snapshot.read_text()[: len(snapshot.read_text()) // 2]]:
            snapshot.write_text(garbage)
            (state / "cb" / "join-journal.jsonl").write_text('{"v":1,"step":')
            stack = Stack(models, state_dir=state).start()
            alive(stack)
            status = wait_until(lambda: (s := loop_status(stack))["last_error"] and "moved aside" in s["last_error"] and s,
                                JOIN_BOUND, step=0.2)
            assert status, loop_status(stack)
            assert list((state / "cb").glob("join-state.json.corrupt-*"))
            r = stack.post("/v1/models/cb:activate", json={"event_id": "late"})
            assert r.status_code == 202
            send_events(stack, 3, f"b{len(garbage)}")
            assert wait_until(lambda: "late" in joined_ids(state) and len(joined_ids(state)) >= 14, JOIN_BOUND,
                              step=0.2), joined_ids(state)
            ids = joined_ids(state)
            assert len(ids) == len(set(ids)), "an event was joined twice"
            assert not stack.stop()
            # Re-activating is harmless now; the next round starts from the same joined set.
        stack = Stack(models, state_dir=state).start()
        alive(stack)
    finally:
        stack.stop(check=False)


def test_an_unterminated_line_is_not_read_again_and_again(tmp_path):
    """A 100 MB unterminated last line was re-read whole every round (1-2 GB per 10 s)."""
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "update_interval": "1h"})
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()
    try:
        send_events(stack, 2, "t")
        big = state / "cb" / "log" / "other-1.dsjson"
        with big.open("wb") as f:
            f.write(b'{"EventId":"x","v":' + b"1" * (24 << 20))
        before = vwfcgi_io(stack)["rchar"]
        wait_until(lambda: False, 4, step=0.5)  # about 16 join rounds
        read = vwfcgi_io(stack)["rchar"] - before
        assert read <= 2 * (24 << 20), f"read {read >> 20} MB in 4 s for one 24 MB unterminated line"
        alive(stack)
        send_events(stack, 2, "u")
        assert wait_until(lambda: len(joined_ids(state)) == 4, JOIN_BOUND, step=0.2)
    finally:
        assert not stack.stop()


# ---------------------------------------------------------------- settings in force
def test_loop_settings_follow_the_json_at_every_reload(tmp_path):
    """default_reward 0 → 0.5 still joined with 0; internal → external kept joining; external → internal joined
    nothing. The settings in force are the serving version's, shown in /loop."""
    models = make_model_dir(tmp_path / "models", loop={**LOOP, "update_interval": "1h"})
    state = tmp_path / "state"
    stack = Stack(models, state_dir=state).start()

    def reload(loop: dict) -> None:
        version = model_status(stack)["version"]
        (models / "cb.json").write_text(json.dumps({"input": "vw_json", "loop": loop}) + "\n")
        assert wait_until(lambda: model_status(stack)["version"] != version, 30, step=0.1)
    try:
        rank(stack, "z1")
        assert wait_until(lambda: "z1" in joined_ids(state), JOIN_BOUND, step=0.2)
        reload({**LOOP, "update_interval": "1h", "default_reward": 0.5})
        assert loop_status(stack)["settings"]["default_reward"] == 0.5
        rank(stack, "z2")
        assert wait_until(lambda: "z2" in joined_ids(state), JOIN_BOUND, step=0.2)
        costs = {json.loads(line)["EventId"]: json.loads(line)["_label_cost"] for line in joined_lines(state)}
        assert costs["z1"] == 0 and costs["z2"] == -0.5, costs
        reload({**LOOP, "update_interval": "1h", "trainer": "external"})
        assert wait_until(lambda: not loop_status(stack)["joins_here"], 10, step=0.2), loop_status(stack)
        rank(stack, "z3")
        wait_until(lambda: False, 3, step=0.5)
        assert "z3" not in joined_ids(state)
        assert loop_status(stack)["settings"]["trainer"] == "external"
        reload({**LOOP, "update_interval": "1h"})
        assert wait_until(lambda: "z3" in joined_ids(state), JOIN_BOUND, step=0.2), loop_status(stack)
        assert loop_status(stack)["joins_here"]
    finally:
        assert not stack.stop()
