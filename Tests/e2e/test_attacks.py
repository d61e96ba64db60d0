"""Attacks of issue 11 on multiline models: each test asserts the harm is absent.

* (1) A UTF-8 BOM before `save_<path>|` on a `--csoaa_ldf` model made vw save its model to
  <path> (VW strips a leading BOM, the server's `save` check looked at the BOM). Now: 400, no
  file, and the model still answers correctly.
* (2) Malformed multiline examples made vw print an extra blank line (every later answer on that
  vw shifted to the next request, another client's tag included) or crash (SIGSEGV/abort; the
  retry then crashed the second shard). Now: 400 (or VW's own correct answer), then 200
  concurrent innocent requests with distinct tags each get their own answer, a client sending
  innocent requests during the attack gets its own answers, and no shard was replaced (same
  pids, same restart counts).
* (3) One example within every size limit but with a quadratic interaction cost (`-q ab`,
  30,000 x 30,000 features) took seconds and got the shard killed. Now: 400/413 with a reason
  before vw sees it, no shard killed.

ccb and slates models are trained with `--epsilon 0`, so their answers do not depend on VW's
sampler state (which advances per example, i.e. on routing): an answer can be checked under
concurrency. ccb and slates print no tag, so their innocent requests differ in their number of
slots and users: an answer delivered to the wrong request has the wrong shape or values.
"""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
import requests

from conftest import REFERENCE_VW, Stack, assert_json_error, train_small_logistic, wait_until
from test_families import (CCB_WARMUP, SLATES_WARMUP, Family, adf_train, answers_of, ccb_train, ldf_train, oracle,
                           settled, slates_train, train)

SHARDS = 2
INNOCENT_BURST = 200

MODELS = {
    "ldf": Family("ldf", ["--csoaa_ldf", "m"], ldf_train(100), ""),
    # ccb and slates get a warmup: the default probe (`|`) is not an example of theirs.
    "ccb": Family("ccb", ["--ccb_explore_adf", "--epsilon", "0"], ccb_train(150), "", warmup=CCB_WARMUP),
    "cbe": Family("cbe", ["--cb_explore_adf", "--epsilon", "0.2"], adf_train(150), ""),
    "cbadf": Family("cbadf", ["--cb_adf"], adf_train(150), ""),
    "slates": Family("slates", ["--slates", "--epsilon", "0"], slates_train(150), "", warmup=SLATES_WARMUP),
}


# ---------------------------------------------------------------- innocent examples per model
# Each is a template; `cX` is the tag placeholder for models that print tags, replaced by the
# request's own tag in both the example and VW's answer.
def _ccb(user: int, slots: int, actions: int = 3) -> str:
    return "\n".join([f"ccb shared |s u{user}"] + [f"ccb action |a a{k}" for k in range(actions)]
                     + [f"ccb slot |z s{k}" for k in range(slots)])


def _slates(user: int) -> str:
    return "\n".join([f"slates shared |s u{user}", "slates action 0 |a a0", "slates action 0 |a a1",
                      "slates action 1 |a b0", "slates action 1 |a b1", "slates slot |z s0", "slates slot |z s1"])


INNOCENT = {
    "ldf": [f"1:0 'cX |a id0 u{u}\n2:0 |a id1 u{u}\n3:0 |a id2 u{u}" for u in range(3)],
    "cbe": [f"shared 'cX |s u{u}\n|x a0\n|x a1 q:{u / 4}\n|x a2" for u in range(3)],
    "cbadf": [f"shared 'cX |s u{u}\n|x a0\n|x a1 q:{u / 4}\n|x a2" for u in range(3)],
    "ccb": [_ccb(u, s) for u in range(3) for s in (1, 2, 3)],
    "slates": [_slates(u) for u in range(2)],
}


class Served:
    def __init__(self, stack: Stack, model_dir: Path, work: Path, innocent: dict[str, list[str]]):
        self.stack, self.model_dir, self.work = stack, model_dir, work
        self.innocent_answers = innocent  # VW's printed answer per INNOCENT template

    def innocent(self, model: str, i: int) -> tuple[str, str]:
        """Request i's innocent text body and the reply VW gives for it."""
        templates = INNOCENT[model]
        k = i % len(templates)
        tag = f"c{i}"
        return templates[k].replace("cX", tag) + "\n\n", self.innocent_answers[model][k].replace("cX", tag)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("attacks")
    model_dir, work = base / "models", base / "work"
    model_dir.mkdir()
    work.mkdir()
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(train, f, model_dir, work) for f in MODELS.values()]:
            future.result()
    train_small_logistic(model_dir / "quad.vw", seed=5, examples=200)  # -q ab
    answers = {}
    for name, templates in INNOCENT.items():
        text = "".join(t + "\n\n" for t in templates)
        printed = answers_of(oracle(MODELS[name], model_dir, work, text + text))
        n = len(templates)
        assert printed[:n] == printed[n:], f"{name}: VW's answers depend on what it saw before: {printed}"
        answers[name] = ["\n".join(lines) + "\n\n" for lines in printed[:n]]
    stack = Stack(model_dir, shards=SHARDS).start(ready=False)
    settled(stack, [*MODELS, "quad"])
    yield Served(stack, model_dir, work, answers)
    problems = stack.stop()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- harm checks
def shards_of(stack: Stack, model: str) -> list[tuple[int | None, int]]:
    status = stack.get(f"/v1/models/{model}", timeout=10).json()
    assert status.get("ready") is True, f"{model} is not ready: last_error={status.get('last_error')!r}"
    return [(s.get("pid"), s.get("restarts")) for s in status["shards"]]


def innocent_request(s: Served, model: str, i: int) -> str | None:
    """Sends innocent request i (its own session); returns what went wrong, or None."""
    body, want = s.innocent(model, i)
    try:
        r = requests.post(s.stack.url(f"/v1/models/{model}:predict"), data=body.encode(),
                          headers={"Content-Type": "text/plain"}, timeout=30)
    except requests.RequestException as error:
        return f"request {i}: {error!r}"
    if r.status_code != 200 or r.text != want:
        return f"request {i}: {r.status_code} {r.text[:200]!r}, want {want!r}"
    return None


def innocent_burst(s: Served, model: str, n: int = INNOCENT_BURST) -> list[str]:
    with ThreadPoolExecutor(max_workers=32) as pool:
        return [e for e in pool.map(lambda i: innocent_request(s, model, i), range(n)) if e]


class InnocentClient:
    """A client sending innocent requests to `model` while an attack runs."""

    def __init__(self, s: Served, model: str):
        self.s, self.model = s, model
        self.errors: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 10_000
        while not self.stop.is_set():
            error = innocent_request(self.s, self.model, i)
            if error:
                self.errors.append(error)
            self.sent += 1
            i += 1

    def __enter__(self):
        self.thread.start()
        wait_until(lambda: self.sent >= 1 or self.errors, bound=10)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=60)


def harm(s: Served, model: str, before, client: InnocentClient) -> list[str]:
    """What an attack harmed: a concurrent client's answers, a later burst's answers, the shards."""
    problems = []
    if client.sent == 0:
        problems.append("the concurrent innocent client completed no request: its check saw nothing")
    if client.errors:
        problems.append(f"a concurrent innocent client got wrong answers ({len(client.errors)} of {client.sent}): "
                        f"{client.errors[:3]}")
    burst = innocent_burst(s, model)
    if burst:
        problems.append(f"{len(burst)} of {INNOCENT_BURST} innocent requests got wrong answers: {burst[:3]}")
    after = shards_of(s.stack, model)
    if after != before:
        problems.append(f"shards changed (pid, restarts): before {before}, after {after} (a vw crashed or was killed)")
    return problems


def check(problems: list[str], assertion: Callable[[], None]) -> None:
    """Runs an assertion, recording its failure instead of stopping (every harm is reported)."""
    try:
        assertion()
    except AssertionError as error:
        problems.append(str(error).split("\nassert ")[0])


def assert_refused_or_vws(s: Served, model: str, r: requests.Response, example: str, *, text: bool) -> None:
    """400 (JSON error), or 200 with what VW itself prints for the example (when vw answers it)."""
    if r.status_code == 400:
        assert_json_error(r, 400)
        return
    assert r.status_code == 200, f"want 400 (or VW's answer), got {r.status_code}: {r.text[:300]!r}"
    try:
        want = oracle(MODELS[model], s.model_dir, s.work, example + "\n\n")
    except AssertionError as error:
        raise AssertionError(f"answered 200 {r.text[:200]!r} to an example vw itself fails on "
                             f"(an answer VW never gave): {str(error)[:300]}") from None
    if text:
        assert r.text == want, f"200 with {r.text!r}, vw -t prints {want!r}"
    else:
        predictions = r.json()["predictions"]
        assert len(predictions) == 1 and len(answers_of(want)) == 1, (predictions, want)


# ---------------------------------------------------------------- (1) BOM + save_ on csoaa_ldf
BOM = "\ufeff"


@pytest.mark.parametrize("form", ["text", "json"])
@pytest.mark.parametrize("shape", ["first_line", "second_line"])
def test_bom_save_on_csoaa_ldf_writes_no_file(served, tmp_path, form, shape):
    target = tmp_path / "pwned"
    evil = f"{BOM}save_{target}|a id0 u1"
    example = evil if shape == "first_line" else f"1:0 |a id0 u1\n{evil}"
    before = shards_of(served.stack, "ldf")
    with InnocentClient(served, "ldf") as client:
        if form == "text":
            r = served.stack.post("/v1/models/ldf:predict", data=(example + "\n\n").encode(),
                                  headers={"Content-Type": "text/plain"})
        else:
            r = served.stack.predict("ldf", [example])
        time.sleep(0.5)  # vw saves synchronously, but give a stray write time to land
    problems = []
    if target.exists():
        problems.append(f"vw wrote {target} ({target.stat().st_size} bytes) from an HTTP request")
    if list(tmp_path.iterdir()):
        problems.append(f"files created: {list(tmp_path.iterdir())}")
    check(problems, lambda: assert_json_error(r, 400))
    problems += harm(served, "ldf", before, client)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- (2) malformed multiline examples
MALFORMED = [
    ("ccb", "ccb_slot_5", "ccb shared |s u1\nccb action |a a0\nccb action |a a1\nccb action |a a2\nccb slot 5 |z s0"),
    ("cbe", "cb_explore_adf_shared_only", "shared |s u1"),
    ("cbadf", "cb_adf_shared_only", "shared |s u1"),
    ("ldf", "csoaa_ldf_unlabelled_first_line", "|a id0 u1\n1:0 |a id1 u1"),
    ("ccb", "ccb_slot_alone", "ccb slot |"),
    ("ccb", "ccb_lone_action", "ccb action |a a0"),
    ("ccb", "ccb_more_slots_than_actions", _ccb(1, 3, actions=2)),
    ("slates", "slates_slot_alone", "slates slot |"),
    ("slates", "slates_action_slot_out_of_range",
     "slates shared |s u1\nslates action 5 |a a0\nslates slot |z s0"),
]


@pytest.mark.parametrize("form", ["text", "json"])
@pytest.mark.parametrize("model,case,example", MALFORMED, ids=[c for _, c, _ in MALFORMED])
def test_malformed_multiline_example_harms_no_one(served, model, case, example, form):
    before = shards_of(served.stack, model)
    with InnocentClient(served, model) as client:
        if form == "text":
            r = served.stack.post(f"/v1/models/{model}:predict", data=(example + "\n\n").encode(),
                                  headers={"Content-Type": "text/plain"})
        else:
            r = served.stack.predict(model, [example])
        # The same attack again, in the middle of a batch of innocent examples.
        body, _ = served.innocent(model, 0)
        if form == "text":
            r2 = served.stack.post(f"/v1/models/{model}:predict", data=(body + example + "\n\n" + body).encode(),
                                   headers={"Content-Type": "text/plain"})
        else:
            r2 = served.stack.predict(model, [body.strip("\n"), example, body.strip("\n")])
    problems = []
    check(problems, lambda: assert_refused_or_vws(served, model, r, example, text=form == "text"))
    if r2.status_code == 400:
        check(problems, lambda: assert_json_error(r2, 400))
    elif r2.status_code != 200:
        problems.append(f"attack amid innocent examples: {r2.status_code}: {r2.text[:300]!r}")
    problems += harm(served, model, before, client)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- (3) interaction-cost bomb
def test_quadratic_interaction_bomb_is_refused_before_vw(served):
    """`-q ab` with 30,000 features in each namespace: 9e8 pairs in one ~400 KB example."""
    stack = served.stack
    n = 30_000
    line = "|a " + " ".join(str(k) for k in range(n)) + " |b " + " ".join(str(k) for k in range(n))
    assert len(line) < 1024 * 1024, "the bomb must fit every size limit"
    canary = [" |a x:0.25 |b y:0.5", " |a x:0.75 |b y:0.1"]
    r = stack.predict("quad", canary)
    assert r.status_code == 200, r.text
    want = r.json()["predictions"]
    # The baseline is the server's answer (compared exactly below); it must itself be VW's.
    data, out = served.work / "quad-canary.txt", served.work / "quad-canary.out"
    data.write_text("".join(line + "\n" for line in canary))
    subprocess.run([REFERENCE_VW, "-i", str(served.model_dir / "quad.vw"), "-t", "-d", str(data), "-p", str(out),
                    "--quiet"], check=True, timeout=60, stdin=subprocess.DEVNULL)
    vw = [float(v) for v in out.read_text().split()]
    assert len(want) == len(vw) and all(abs(g - w) <= 1e-5 for g, w in zip(want, vw)), f"{want} != vw -t {vw}"
    before = shards_of(stack, "quad")
    errors: list[str] = []
    completed = [0]
    stop = threading.Event()

    def innocent():
        while not stop.is_set():
            try:
                rr = requests.post(stack.url("/v1/models/quad:predict"), json={"instances": canary}, timeout=30)
                completed[0] += 1
                if rr.status_code != 200 or rr.json()["predictions"] != want:
                    errors.append(f"{rr.status_code} {rr.text[:200]!r}")
            except requests.RequestException as error:
                errors.append(repr(error))

    client = threading.Thread(target=innocent, daemon=True)
    client.start()
    try:
        assert wait_until(lambda: completed[0] >= 1, 30), "the innocent client completed no request: its check would see nothing"
        started = time.monotonic()
        r = stack.post("/v1/models/quad:predict", data=(line + "\n").encode(), headers={"Content-Type": "text/plain"})
        took = time.monotonic() - started
        rj = stack.predict("quad", [line])
    finally:
        stop.set()
        client.join(timeout=60)
    for resp in (r, rj):
        assert resp.status_code == 413, f"want 413 (the interaction budget), got {resp.status_code} after {took:.1f}s: {resp.text[:300]!r}"
        body = assert_json_error(resp, resp.status_code)
        assert any(w in body["error"].lower() for w in ("interaction", "cost", "features", "quadratic")), body
    assert not errors, f"innocent client failed during the bomb: {errors[:3]}"
    r = stack.predict("quad", canary)
    assert r.status_code == 200 and r.json()["predictions"] == want, r.text
    assert shards_of(stack, "quad") == before, "a quad shard was killed or restarted"
