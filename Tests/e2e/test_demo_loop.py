"""The learning-loop demo (issue 13, item 7; README "Learning loop demo").

scripts/train_demo.py (what `make run` runs on an empty MODEL_DIR) trains `recommend`, a
`--cb_explore_adf` VW JSON model with a loop; it loads, `:rank` and `:reward` answer, and
scripts/simulate_loop.py (stdlib only) runs against a real stack and prints its rate lines.
Learning itself is asserted by the loop's own tests, not here; nothing here is timed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REFERENCE_VW, ROOT, Stack, model_version

TRAIN = ROOT / "scripts" / "train_demo.py"
SIMULATE = ROOT / "scripts" / "simulate_loop.py"
USERS = ["alice", "bob", "carol", "dave"]
ACTIONS = ["sports", "news", "music", "movies"]


def context(user: str) -> dict:
    return {"User": {"id": user}, "_multi": [{"Action": {"t": a}} for a in ACTIONS]}


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo-models")
    subprocess.run([sys.executable, str(TRAIN), str(path)], check=True, timeout=300, stdin=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module")
def demo_stack(demo_models, tmp_path_factory):
    s = Stack(demo_models, state_dir=tmp_path_factory.mktemp("demo-state")).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def test_train_demo_writes_recommend_with_a_loop(demo_models, tmp_path):
    assert sorted(p.name for p in demo_models.iterdir()) == ["demo.json", "demo.vw", "recommend.json", "recommend.vw"]
    assert json.loads((demo_models / "recommend.json").read_text()) == {
        "input": "vw_json",
        "loop": {"update_interval": "5s", "min_events": 50, "reward_wait": "2s", "default_reward": 0.0}}
    header = (demo_models / "recommend.vw").read_bytes()[:400]
    for option in (b"--cb_explore_adf", b"--epsilon 0.2", b"--quadratic UA"):
        assert option in header, f"{option!r} not among the options stored in recommend.vw: {header!r}"
    # It starts knowing nothing about users: VW's own PMF (-t --json) is the same for every user.
    data, out = tmp_path / "in.json", tmp_path / "out.txt"
    data.write_text("".join(json.dumps(context(u)) + "\n" for u in USERS))
    subprocess.run([REFERENCE_VW, "-i", str(demo_models / "recommend.vw"), "-t", "--json", "-d", str(data),
                    "-p", str(out), "--quiet"], check=True, timeout=60, stdin=subprocess.DEVNULL)
    pmfs = [sorted(line.split()[0].split(",")) for line in out.read_text().splitlines() if line.strip()]
    assert len(pmfs) == len(USERS) and all(p == pmfs[0] for p in pmfs), pmfs


def test_demo_models_load_rank_and_reward(demo_stack, demo_models):
    r = demo_stack.get("/v1/models/recommend")
    assert r.status_code == 200 and r.json()["ready"] is True, r.text
    assert r.json()["version"] == model_version(demo_models, "recommend")

    r = demo_stack.post("/v1/models/recommend:rank", json={"event_id": "demo-1", "context": context("alice")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["event_id"] == "demo-1" and answer["version"] == model_version(demo_models, "recommend")
    assert sorted(item["action"] for item in answer["ranking"]) == [0, 1, 2, 3], answer
    assert abs(sum(item["probability"] for item in answer["ranking"]) - 1.0) < 1e-4, answer
    assert answer["action"] in range(4)

    r = demo_stack.post("/v1/models/recommend:reward", json={"event_id": "demo-1", "reward": 1.0})
    assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text
    r = demo_stack.get("/v1/models/recommend/loop")
    assert r.status_code == 200 and r.json()["decisions"] >= 1 and r.json()["rewards"] >= 1, r.text

    # The logistic demo model still serves probabilities.
    r = demo_stack.predict("demo", [" |a x:0.5 |b y:0.2"])
    assert r.status_code == 200 and 0.0 < r.json()["predictions"][0] < 1.0, r.text


def test_simulate_loop_runs_against_a_real_stack(demo_stack):
    before = demo_stack.get("/v1/models/recommend/loop").json()["decisions"]
    # -S: no site-packages, so the script is shown to need nothing but the standard library.
    run = subprocess.run([sys.executable, "-S", str(SIMULATE), "--url", demo_stack.url("/v1/models/recommend"),
                          "--seconds", "3", "--every", "20"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"simulate_loop.py exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    lines = re.findall(r"decisions +(\d+) +best-action rate (\d\.\d\d) +version ([0-9a-f]{12}) +updates (\S+)",
                       run.stdout)
    assert lines, f"no rate line in the output:\n{run.stdout}\n{run.stderr}"
    assert all(0.0 <= float(rate) <= 1.0 for _, rate, _, _ in lines), run.stdout
    done = re.search(r"done: (\d+) decisions", run.stdout)
    assert done and int(done.group(1)) == int(lines[-1][0]) >= 1, run.stdout
    after = demo_stack.get("/v1/models/recommend/loop").json()["decisions"]
    assert after - before == int(done.group(1)), (before, after, run.stdout)
