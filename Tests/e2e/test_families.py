"""Every reduction family VW's own test suite exercises is served as `vw -t` answers it (issue 11).

One model per family is trained here on small synthetic data (with bin/vw, fixed seed), served by
one stack (1 shard per model), and asked the same lines `vw -i model -t -d file -p out` is asked:

* text/plain: the reply is byte for byte what VW printed (tags, blank lines, trailing spaces);
* JSON `{"instances": [...]}` (one string per example, a multiline example's lines joined by
  "\\n"): each prediction is VW's printed answer for that example, parsed as SPEC §5 says
  (integer, number, `[{"action", "probability"}]`, a list for several lines, else the line as a
  string), without its tag.

The query lines carry what changes a prediction and what does not: labels with importance
weights and *initial values* (`0 1 0.5 |a ...`: VW adds the initial value to the prediction even
under `-t`), tags written both ways VW reads them (`'t1 |a` and `t2|a`), unlabelled examples.

Families VW prints in a way the server may not frame (`--top`: answers per group up to a blank
line; `--search`: one line per sequence, no blank line; a stored `--active`: vw listens on a
port unless `--simulation`) are "refused or exact": either they answer exactly as VW, or they are
refused at load with a `last_error` naming the option, within a bounded time, while the other
models keep answering.

`--ccb_explore_adf` and `--slates` draw each slot's action with a random state that VW advances on
every example it sees, unless the slot's tag is `seed=<text>`. vwfcgi tags every slot line it
writes: the client's own `seed=` tag, or `seed=<FNV-1a 64 of the untagged example>_<slot>`
(`CanonicalSeed`). Their answers are therefore a function of the example alone, checked here on
a stack with two shards against VW given the same seeded lines, after other requests, the load
probe and a warmup.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from conftest import REFERENCE_VW, Stack, close, descendants, wait_until

LOAD_BOUND = 90  # seconds for every model of a stack to be either ready or refused (2 shared cores)


# ---------------------------------------------------------------- synthetic data
def _n(rng: random.Random) -> float:
    return round(rng.uniform(-1, 1), 3)


def simple_train(n: int, binary: bool = False) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            x0, x1, y0 = _n(rng), _n(rng), _n(rng)
            s = 0.8 * x0 - 0.5 * y0 + 0.3 * x0 * y0 + 0.2 * x1
            label = (1 if s > 0 else -1) if binary else round(s, 3)
            out.append(f"{label} |a x0:{x0} x1:{x1} |b y0:{y0}")
        return "\n".join(out) + "\n"
    return gen


# label [importance [initial]], tags 't1 and t2| (no space before the bar), unlabelled lines.
SIMPLE_Q = (" |a x0:0.1 x1:0.2 |b y0:0.3\n"
            "0 1 0.5 |a x0:0.53 x1:1 |b y0:0.2\n"
            "1 2 't1 |a x0:-0.4 |b y1:0.9\n"
            "-0.5 0.5 0.25 t2|a x0:0.7 x2:-0.1 |b y0:-0.6\n"
            "0.2 1 -1.5 't3 |a x1:0.4 |b y0:0.1 y1:0.2\n"
            "1 1 2 |a x0:0.2\n"
            "'t4 |a x0:0.9\n")
BINARY_Q = (" |a x0:0.1 x1:0.2 |b y0:0.3\n"
            "-1 1 0.5 |a x0:0.53 x1:1 |b y0:0.2\n"
            "1 2 't1 |a x0:-0.4 |b y1:0.9\n"
            "-1 0.5 0.25 t2|a x0:0.7 x2:-0.1 |b y0:-0.6\n"
            "1 1 -1.5 't3 |a x1:0.4 |b y0:0.1 y1:0.2\n"
            "'t4 |a x0:0.9\n")


def multiclass_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            x0, x1, y0 = _n(rng), _n(rng), _n(rng)
            scores = [x0 + x1, y0 - x0, x1 - y0]
            out.append(f"{scores.index(max(scores)) + 1} |a x0:{x0} x1:{x1} |b y0:{y0}")
        return "\n".join(out) + "\n"
    return gen


MULTICLASS_Q = (" |a x0:0.1 x1:0.2 |b y0:0.3\n"
                "2 |a x0:0.53 x1:1 |b y0:0.2\n"
                "3 0.5 't1 |a x0:-0.4 |b y0:0.9\n"
                "1 t2|a x0:0.7 x1:-0.1 |b y0:-0.6\n"
                "'t4 |a x1:0.9\n")


def cost_sensitive_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            x0, x1, y0 = _n(rng), _n(rng), _n(rng)
            scores = [x0 + x1, y0 - x0, x1 - y0]
            best = scores.index(max(scores))
            costs = " ".join(f"{k + 1}:{0 if k == best else 1}" for k in range(3))
            out.append(f"{costs} |a x0:{x0} x1:{x1} |b y0:{y0}")
        return "\n".join(out) + "\n"
    return gen


COST_SENSITIVE_Q = (" |a x0:0.1 x1:0.2 |b y0:0.3\n"
                    "1:0.5 2:1 3:0 |a x0:0.53 x1:1 |b y0:0.2\n"
                    "2:0 3:1 't1 |a x0:-0.4 |b y0:0.9\n"
                    "1 2 3 t2|a x0:0.7 x1:-0.1 |b y0:-0.6\n"
                    "'t4 |a x1:0.9\n")


def multilabel_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            x0, x1, y0 = _n(rng), _n(rng), _n(rng)
            labels = [str(k) for k, s in enumerate([x0, x1, y0]) if s > 0] or ["0"]
            out.append(",".join(labels) + f" |a x0:{x0} x1:{x1} |b y0:{y0}")
        return "\n".join(out) + "\n"
    return gen


MULTILABEL_Q = (" |a x0:0.1 x1:0.2 |b y0:0.3\n"
                "0,2 |a x0:0.53 x1:1 |b y0:0.2\n"
                "1 't1 |a x0:-0.4 |b y0:0.9\n"
                "t2|a x0:0.7 x1:-0.1 |b y0:-0.6\n"
                "'t4 |a x1:0.9\n")


def cb_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            x0, y0 = _n(rng), _n(rng)
            action = rng.randint(1, 3)
            best = 1 if x0 > 0.3 else (2 if y0 > 0 else 3)
            out.append(f"{action}:{0 if action == best else 1}:0.333 |a x0:{x0} |b y0:{y0}")
        return "\n".join(out) + "\n"
    return gen


CB_Q = (" |a x0:0.1 |b y0:0.3\n"
        "1:0.5:0.3 |a x0:0.53 |b y0:0.2\n"
        "2:1:0.5 't1 |a x0:-0.4 |b y0:0.9\n"
        "t2|a x0:0.7 |b y0:-0.6\n"
        "'t4 |a x0:0.9\n")


def adf_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            user, action = rng.randint(0, 2), rng.randint(0, 2)
            lines = [f"shared |s u{user} s:{_n(rng)}"]
            for k in range(3):
                label = f"0:{0 if k == user else 1}:0.333 " if k == action else ""
                lines.append(f"{label}|x a{k} q:{_n(rng)}")
            out.append("\n".join(lines))
        return "\n\n".join(out) + "\n\n"
    return gen


ADF_Q = ("shared |s u1 s:0.3\n|x a0 q:0.2\n|x a1 q:-0.1\n0:1:0.5 |x a2\n\n"
         "shared 't1 |s u2\n0:0:0.3 |x a0\n|x a1\n\n"
         "|x a0\n|x a1 q:0.4\n|x a2\n\n"
         "shared t2|s u0 s:-0.2\n|x a2\n|x a0\n|x a1\n\n")


def ldf_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            user = rng.randint(0, 2)
            out.append("\n".join(f"{k + 1}:{0 if k == user else 1} |a id{k} u{user}" for k in range(3)))
        return "\n\n".join(out) + "\n\n"
    return gen


LDF_Q = ("1:0 |a id0 u1\n2:0 |a id1 u1\n3:0 |a id2 u1\n\n"
         "1:1 't1 |a id0 u2\n2:0 |a id1 u2\n\n"
         "1:0 t2|a id0 u0\n2:1 |a id1 u0\n3:1 |a id2 u0\n\n")


def ccb_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            user, action = rng.randint(0, 2), rng.randint(0, 2)
            lines = [f"ccb shared |s u{user}"] + [f"ccb action |a a{k}" for k in range(3)]
            lines += [f"ccb slot {action}:{0 if action == user else 1}:0.333 |z s0", "ccb slot |z s1"]
            out.append("\n".join(lines))
        return "\n\n".join(out) + "\n\n"
    return gen


CCB_Q = ("ccb shared |s u1\nccb action |a a0\nccb action |a a1\nccb action |a a2\nccb slot |z s0\nccb slot |z s1\n\n"
         "ccb shared |s u2\nccb action |a a0\nccb action |a a1\nccb action |a a2\nccb slot 1:0.5:0.3 |z s0\n\n"
         "ccb shared |s u0\nccb action |a a0\nccb action |a a1\nccb slot |z s0\nccb slot |z s1\n\n")
CCB_WARMUP = "ccb shared |s u1\nccb action |a a0\nccb action |a a1\nccb slot |z s0"


def slates_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            lines = [f"slates shared {rng.randint(0, 1)} |s u{rng.randint(0, 1)}"]
            lines += [f"slates action 0 |a a{k}" for k in range(2)] + [f"slates action 1 |a b{k}" for k in range(2)]
            lines += [f"slates slot {rng.randint(0, 1)}:0.5 |z s0", f"slates slot {rng.randint(0, 1)}:0.5 |z s1"]
            out.append("\n".join(lines))
        return "\n\n".join(out) + "\n\n"
    return gen


SLATES_ACTIONS = "slates action 0 |a a0\nslates action 0 |a a1\nslates action 1 |a b0\nslates action 1 |a b1\n"
SLATES_Q = (f"slates shared |s u1\n{SLATES_ACTIONS}slates slot |z s0\nslates slot |z s1\n\n"
            f"slates shared 0.5 |s u0\n{SLATES_ACTIONS}slates slot 1:0.5 |z s0\nslates slot 0:0.5 |z s1\n\n")
CCB_MORE = "".join(f"ccb shared |s u{u} w{k}\nccb action |a a0\nccb action |a a1\nccb action |a a2\nccb slot |z s0\nccb slot |z s1\n\n"
                   for u in range(3) for k in range(3))
SLATES_MORE = "".join(f"slates shared |s u{u} w{k}\n{SLATES_ACTIONS}slates slot |z s0\nslates slot |z s1\n\n"
                      for u in range(2) for k in range(4))
SLATES_WARMUP = "slates shared |s u0\n" + SLATES_ACTIONS + "slates slot |z s0\nslates slot |z s1"


def sequence_train(n: int) -> Callable[[random.Random], str]:
    def gen(rng):
        out = []
        for _ in range(n):
            tokens = [rng.randint(1, 3) for _ in range(rng.randint(2, 4))]
            out.append("\n".join(f"{t} |w w{t} p{rng.randint(0, 1)}" for t in tokens))
        return "\n\n".join(out) + "\n\n"
    return gen


TOP_Q = " |a x0:0.1 x1:0.2 |b y0:0.3\n 't1 |a x0:0.5\n |a x1:-0.2 |b y0:0.4\n\n |a x0:-0.3\n |b y1:0.6\n\n"
SEQUENCE_Q = "1 |w w1 p0\n2 |w w2 p1\n3 |w w3 p0\n\n2 |w w2 p0\n1 |w w1 p1\n\n"


@dataclass
class Family:
    name: str
    train_args: list[str]
    train: Callable[[random.Random], str]
    query: str
    vw_args: list[str] = field(default_factory=list)  # the model's .json vw_args (the oracle gets them too)
    oracle_args: list[str] = field(default_factory=list)  # oracle-only options (what vw needs to answer at all)
    refusable: str | None = None  # "refused or exact": the option a refusal must name
    warmup: str | None = None


FAMILIES = [
    Family("squared", [], simple_train(200), SIMPLE_Q),
    Family("logistic", ["--loss_function", "logistic"], simple_train(200, binary=True), BINARY_Q,
           vw_args=["--link", "logistic"]),
    Family("nn", ["--nn", "3"], simple_train(200), SIMPLE_Q),
    Family("lrq", ["--lrq", "ab2"], simple_train(200), SIMPLE_Q),
    Family("oaa", ["--oaa", "3"], multiclass_train(200), MULTICLASS_Q),
    Family("ect", ["--ect", "3"], multiclass_train(200), MULTICLASS_Q),
    Family("csoaa", ["--csoaa", "3"], cost_sensitive_train(200), COST_SENSITIVE_Q),
    Family("multilabel_oaa", ["--multilabel_oaa", "3"], multilabel_train(200), MULTILABEL_Q),
    Family("oaa_probabilities", ["--oaa", "3", "--probabilities", "--loss_function", "logistic"],
           multiclass_train(200), MULTICLASS_Q),
    Family("oaa_scores", ["--oaa", "3", "--scores"], multiclass_train(200), MULTICLASS_Q),
    Family("cb", ["--cb", "3"], cb_train(200), CB_Q),
    Family("cb_explore", ["--cb_explore", "3", "--epsilon", "0.1"], cb_train(200), CB_Q),
    Family("cb_adf", ["--cb_adf"], adf_train(150), ADF_Q),
    Family("cb_explore_adf_epsilon", ["--cb_explore_adf", "--epsilon", "0.2"], adf_train(150), ADF_Q),
    Family("cb_explore_adf_softmax", ["--cb_explore_adf", "--softmax", "--lambda", "1"], adf_train(150), ADF_Q),
    Family("cb_explore_adf_bag", ["--cb_explore_adf", "--bag", "3"], adf_train(150), ADF_Q),
    Family("cb_explore_adf_cover", ["--cb_explore_adf", "--cover", "3"], adf_train(150), ADF_Q),
    Family("csoaa_ldf", ["--csoaa_ldf", "m"], ldf_train(100), LDF_Q),
    Family("bootstrap", ["--bootstrap", "3"], simple_train(200), SIMPLE_Q),
    Family("boosting", ["--boosting", "3"], simple_train(200, binary=True), BINARY_Q),
    Family("ksvm", ["--ksvm"], simple_train(100, binary=True), BINARY_Q),
    # BFGS models load only when written and read with --predict_only_model (VW 9).
    Family("bfgs", ["--bfgs", "--passes", "3", "-c", "-k", "--predict_only_model"], simple_train(200), SIMPLE_Q,
           vw_args=["--predict_only_model"]),
]
# Sampling families: seeded per slot, served by two shards (see the module docstring).
SAMPLING = [
    # epsilon 0.5: the draws differ between examples (the test checks that the answers do)
    Family("ccb", ["--ccb_explore_adf", "--epsilon", "0.5"], ccb_train(150), CCB_Q + CCB_MORE, warmup=CCB_WARMUP),
    Family("slates", ["--slates", "--epsilon", "0.5"], slates_train(150), SLATES_Q + SLATES_MORE, warmup=SLATES_WARMUP),
]
# Refused or exact. An --active model trained with --simulation stores --active but not
# --simulation: served as is, vw would listen on 0.0.0.0:26542 for labelling queries. The only
# answers VW gives without a port are with --simulation, so that is the oracle.
REFUSABLE = [
    Family("top", ["--top", "2"], simple_train(200), TOP_Q, refusable="top"),
    Family("search", ["--search", "3", "--search_task", "sequence"], sequence_train(100), SEQUENCE_Q,
           refusable="search"),
    Family("active", ["--active", "--simulation", "--mellowness", "0.1", "--predict_only_model"],
           simple_train(200, binary=True), BINARY_Q, oracle_args=["--simulation"], refusable="active"),
]
# The canary beside the refusable models: no label, so it answers right whatever labels do.
CANARY = Family("canary", [], simple_train(100), " |a x0:0.1 x1:0.2 |b y0:0.3\n'c1 |a x0:0.5\nc2|b y0:-0.4\n")
ACTIVE_PORT = 26542  # VW's default --active port


# ---------------------------------------------------------------- training and the oracle
def _vw(args: list[str], cwd: Path, timeout: float = 60) -> None:
    r = subprocess.run([REFERENCE_VW, *args, "--quiet"], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"vw {' '.join(args)} failed ({r.returncode}): {r.stderr[-800:]}"


def train(family: Family, model_dir: Path, work: Path) -> None:
    """Writes <model_dir>/<name>.vw (and .json) from a fixed-seed synthetic data set."""
    data = work / f"{family.name}.train"
    data.write_text(family.train(random.Random(sum(map(ord, family.name)))))
    _vw(["-d", data.name, "-f", str(model_dir / f"{family.name}.vw"), "--random_seed", "7", *family.train_args],
        cwd=work)
    sidecar = {}
    if family.vw_args:
        sidecar["vw_args"] = family.vw_args
    if family.warmup:
        sidecar["warmup"] = [family.warmup]
    if sidecar:
        (model_dir / f"{family.name}.json").write_text(json.dumps(sidecar) + "\n")


def oracle(family: Family, model_dir: Path, work: Path, text: str) -> str:
    """Exactly what `vw -i model -t -d file -p out --quiet <vw_args>` prints for `text`."""
    data, out = work / f"{family.name}.oracle.in", work / f"{family.name}.oracle.out"
    data.write_text(text)
    _vw(["-i", str(model_dir / f"{family.name}.vw"), "-t", "-d", str(data), "-p", str(out),
         *family.vw_args, *family.oracle_args], cwd=work, timeout=30)
    return out.read_text()


def examples_of(query: str) -> list[str]:
    """The examples of a query: its lines, or for multiline queries its blank-line-separated blocks."""
    if "\n\n" in query:
        return [block for block in query.split("\n\n") if block.strip()]
    return query.splitlines()


def answers_of(printed: str) -> list[list[str]]:
    """VW's printed output cut per example: lines, or the blocks before each blank line."""
    if "\n\n" in printed:
        blocks = printed.split("\n\n")
        assert blocks[-1] == "", f"output does not end with a blank line: {printed!r}"
        return [block.split("\n") for block in blocks[:-1]]
    return [[line] for line in printed.splitlines()]


def tag_of(example: str) -> str:
    """The tag VW reads on an example's first line: `'t1 |` or `t2|` (no space before the bar)."""
    head = example.split("\n", 1)[0].split("|", 1)[0]
    words = head.split()
    if not words:
        return ""
    if not head[-1].isspace():
        return words[-1].lstrip("'")
    return words[-1][1:] if words[-1].startswith("'") else ""


INTEGER = re.compile(r"-?[0-9]+")
NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
ACTIONS = re.compile(r"[0-9]+:-?[0-9.eE+-]+(,[0-9]+:-?[0-9.eE+-]+)*")


def without_tag(line: str, tag: str) -> str:
    """VW's line without the tag it printed (VW prints it after the prediction, or amid the
    per-bag predictions for --bootstrap): the first ` <tag>` word removed."""
    if not tag:
        return line
    match = re.search(" " + re.escape(tag) + r"(?= |$)", line)
    return line if match is None else line[:match.start()] + line[match.end():]


def expected_json(lines: list[str], tag: str):
    """SPEC §5's P for one example's printed lines."""
    parsed = [_expected_line(without_tag(line, tag) if i == 0 else line) for i, line in enumerate(lines)]
    return parsed[0] if len(parsed) == 1 else ("list", parsed)


def _expected_line(line: str):
    if INTEGER.fullmatch(line):
        return ("int", int(line))
    if NUMBER.fullmatch(line):
        return ("number", float(line))
    if ACTIONS.fullmatch(line):
        return ("actions", [(int(a), float(v)) for a, v in (item.split(":") for item in line.split(","))])
    return ("text", line)


def mismatch(got, want) -> str | None:
    """Why a JSON prediction differs from the expected one, or None."""
    kind, value = want
    if kind == "int":
        ok = isinstance(got, int) and not isinstance(got, bool) and got == value
    elif kind == "number":
        ok = close(got, value)
    elif kind == "text":
        ok = got == value
    elif kind == "actions":
        ok = (isinstance(got, list) and len(got) == len(value)
              and all(isinstance(item, dict) and set(item) == {"action", "probability"}
                      and item["action"] == a and close(item["probability"], p)
                      for item, (a, p) in zip(got, value)))
    else:  # a list of lines
        ok = isinstance(got, list) and len(got) == len(value) and all(
            mismatch(g, w) is None for g, w in zip(got, value))
    return None if ok else f"got {got!r}, want {kind} {value!r}"


def assert_json_equals_vw(predictions: list, examples: list[str], printed: str) -> None:
    answers = answers_of(printed)
    assert len(answers) == len(examples), f"vw printed {len(answers)} answers for {len(examples)} examples"
    assert isinstance(predictions, list) and len(predictions) == len(examples), \
        f"{len(predictions) if isinstance(predictions, list) else predictions!r} predictions for {len(examples)} instances"
    bad = []
    for i, (got, example, lines) in enumerate(zip(predictions, examples, answers)):
        why = mismatch(got, expected_json(lines, tag_of(example)))
        if why:
            bad.append(f"instance {i} ({example.splitlines()[0]!r}; vw printed {lines!r}): {why}")
    assert not bad, "JSON predictions differ from VW's:\n" + "\n".join(bad)


# ---------------------------------------------------------------- stacks
def model_status(stack: Stack, name: str) -> dict:
    r = stack.get(f"/v1/models/{name}", timeout=10)
    assert r.status_code == 200, f"GET /v1/models/{name}: {r.status_code} {r.text[:300]!r}"
    return r.json()


def settled(stack: Stack, names: list[str], bound: float = LOAD_BOUND) -> dict[str, dict]:
    """Waits (bounded) until every model is ready or has a last_error; returns their status."""
    def poll():
        out = {}
        for name in names:
            try:
                r = stack.get(f"/v1/models/{name}", timeout=5)
            except Exception:  # noqa: BLE001 - not up yet
                return None
            if r.status_code != 200:
                return None
            status = r.json()
            if not (status.get("ready") or status.get("last_error")):
                return None
            out[name] = status
        return out
    return wait_until(poll, bound=bound, step=0.2) or {}


@dataclass
class Served:
    stack: Stack
    model_dir: Path
    work: Path
    status: dict[str, dict]
    printed: dict[str, str]  # oracle output for the family's query
    settle_seconds: float  # from starting the stack until every model was ready or refused
    ports_seen: set = field(default_factory=set)  # TCP ports listened on while the stack started


def _train_all(families: list[Family], model_dir: Path, work: Path) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(train, f, model_dir, work) for f in families]:
            future.result()


def _serve(tmp_path_factory, families: list[Family], oracle_text: Callable[[Family], str],
           bound: float = LOAD_BOUND, during_start: Callable[[Stack], None] | None = None, shards: int = 1):
    base = tmp_path_factory.mktemp("families")
    model_dir, work = base / "models", base / "work"
    model_dir.mkdir()
    work.mkdir()
    _train_all(families, model_dir, work)
    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = list(pool.map(lambda f: oracle(f, model_dir, work, oracle_text(f)) if not f.refusable else None,
                                families))
    printed = {f.name: out for f, out in zip(families, outputs)}
    started = time.monotonic()
    stack = Stack(model_dir, shards=shards, start_timeout=bound)
    if during_start is None:
        stack.start(ready=False)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            watcher = pool.submit(during_start, stack)
            try:
                stack.start(ready=False)
            finally:
                stack.started = True
                watcher.result()
    status = settled(stack, [f.name for f in families], bound=max(1.0, bound - (time.monotonic() - started)))
    return Served(stack, model_dir, work, status, printed, time.monotonic() - started)


def _stop(served: Served) -> None:
    problems = served.stack.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = _serve(tmp_path_factory, FAMILIES, lambda f: f.query)
    yield s
    _stop(s)


def require_ready(s: Served, name: str) -> None:
    status = s.status.get(name) or model_status(s.stack, name)
    assert status.get("ready") is True, \
        f"{name} did not load: last_error={status.get('last_error')!r}\n{s.stack.logs()}"


def post_text(stack: Stack, name: str, text: str):
    return stack.post(f"/v1/models/{name}:predict", data=text.encode(),
                      headers={"Content-Type": "text/plain; charset=utf-8"})


# ---------------------------------------------------------------- the tests
@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_text_reply_is_what_vw_prints(served, family):
    require_ready(served, family.name)
    want = served.printed[family.name]
    assert want.strip(), "vw printed nothing: the oracle itself is broken"
    r = post_text(served.stack, family.name, family.query)
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]!r}"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == want, f"\nvwfcgi: {r.text!r}\nvw -t:  {want!r}"


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_json_predictions_are_vws(served, family):
    require_ready(served, family.name)
    examples = examples_of(family.query)
    r = served.stack.predict(family.name, examples)
    assert r.status_code == 200, f"{r.status_code} {r.text[:500]!r}"
    body = r.json()
    assert body["model"] == family.name
    assert_json_equals_vw(body["predictions"], examples, served.printed[family.name])


def test_initial_value_in_a_label_changes_the_prediction(served):
    """VW adds a label's initial value to the prediction even under -t (`houses` data):
    dropping the label changes the answer (VW 0.527994, vwfcgi 0.027994 in issue 11)."""
    require_ready(served, "squared")
    lines = [" |a x0:0.1 x1:0.2 |b y0:0.3", "0 1 0.5 |a x0:0.1 x1:0.2 |b y0:0.3", "7 3 -0.3 |a x0:0.1 x1:0.2 |b y0:0.3"]
    family = next(f for f in FAMILIES if f.name == "squared")
    want = [float(x) for x in oracle(family, served.model_dir, served.work, "\n".join(lines) + "\n").split()]
    # VW's own rule (inside the label range the model saw, so nothing is clipped):
    assert abs(want[1] - want[0] - 0.5) < 1e-5 and abs(want[2] - want[0] + 0.3) < 1e-5, want
    r = served.stack.predict("squared", lines)
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert all(close(g, w) for g, w in zip(got, want)) and len(got) == 3, f"vwfcgi {got}, vw -t {want}"
    r = post_text(served.stack, "squared", "\n".join(lines) + "\n")
    assert [float(x) for x in r.text.split()] == pytest.approx(want, abs=1e-6), r.text


def test_every_family_still_answers_after_the_others(served):
    """All families served side by side: one more text round for each, after every other test."""
    bad = []
    for family in FAMILIES:
        if not (served.status.get(family.name) or {}).get("ready"):
            bad.append(f"{family.name}: not ready ({(served.status.get(family.name) or {}).get('last_error')!r})")
            continue
        r = post_text(served.stack, family.name, family.query)
        if r.status_code != 200 or r.text != served.printed[family.name]:
            bad.append(f"{family.name}: {r.status_code} {r.text[:200]!r}")
    assert not bad, "\n".join(bad)


# ---- ccb and slates: every slot is seeded, so an answer depends on the example alone.
def fnv1a64(data: bytes) -> str:
    value = 0xcbf29ce484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def seeded(family: str, query: str, seed: Callable[[int, str, int], str] | None = None) -> str:
    """The query as vwfcgi writes it to vw, computed independently of vwfcgi: the label words vw
    cannot use under -t dropped (ccb outcomes, slates costs and probabilities), no tags but one on
    each slot line: `seed(example, digest, slot)`, by default VW's `seed=<digest>_<slot>` where
    digest is FNV-1a 64 of the untagged example text (its lines and blank line)."""
    out = []
    for index, block in enumerate(examples_of(query)):
        lines = []
        for line in block.split("\n"):
            head, features = line.split("|", 1)
            words = head.split()
            keep = words[:2]
            if family == "ccb" and words[1] == "slot":
                keep += [w for w in words[2:] if ":" not in w and not w.startswith("'")]
            if family == "slates" and words[1] == "action":
                keep += words[2:3]
            lines.append(" ".join(keep) + " |" + features)
        digest = fnv1a64(("\n".join(lines) + "\n\n").encode())
        slot, tagged = 0, []
        for line in lines:
            if line.split()[1] == "slot":
                head, features = line.split(" |", 1)
                tag = seed(index, digest, slot) if seed else f"seed={digest}_{slot}"
                line = f"{head} '{tag} |{features}"
                slot += 1
            tagged.append(line)
        out.append("\n".join(tagged) + "\n\n")
    return "".join(out)


def client_seeded(query: str) -> str:
    """The query with the client's own seed on every slot line: `'seed=c<example>-<slot>`."""
    out = []
    for index, block in enumerate(examples_of(query)):
        slot, lines = 0, []
        for line in block.split("\n"):
            if line.split()[1] == "slot":
                head, features = line.split("|", 1)
                line = f"{head}'seed=c{index}-{slot} |{features}"
                slot += 1
            lines.append(line)
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


@pytest.fixture(scope="module")
def sampling(tmp_path_factory):
    s = _serve(tmp_path_factory, SAMPLING, lambda f: seeded(f.name, f.query), shards=2)
    for f in SAMPLING:
        s.printed[f"{f.name}/client"] = oracle(f, s.model_dir, s.work, seeded(
            f.name, f.query, seed=lambda example, digest, slot: f"seed=c{example}-{slot}"))
    yield s
    _stop(s)


@pytest.mark.parametrize("family", SAMPLING, ids=[f.name for f in SAMPLING])
def test_sampling_families_answer_as_vw_on_the_seeded_example_on_any_shard(sampling, family):
    """Text and JSON, 16 requests at a time over two shards that saw the load probe, a warmup and
    each other's requests in no known order: every answer is VW's for the example with its seeds.
    A single example alone gets the answer it gets inside the batch."""
    require_ready(sampling, family.name)
    want = sampling.printed[family.name]
    printed = answers_of(want)
    examples = examples_of(family.query)
    assert len(printed) == len(examples), f"oracle printed {len(printed)} answers"
    assert len({tuple(lines) for lines in printed}) > 1, "the oracle's answers are all alike: a weak test"

    def one(round_: int):
        if round_ % 3 == 0:
            r = post_text(sampling.stack, family.name, family.query)
            return None if r.status_code == 200 and r.text == want else f"text: {r.status_code} {r.text!r}"
        if round_ % 3 == 1:
            r = sampling.stack.predict(family.name, examples)
            assert r.status_code == 200, f"{r.status_code} {r.text[:500]!r}"
            assert_json_equals_vw(r.json()["predictions"], examples, want)
            return None
        k = round_ % len(examples)
        r = post_text(sampling.stack, family.name, examples[k] + "\n\n")
        alone = "\n".join(printed[k]) + "\n\n"
        return None if r.status_code == 200 and r.text == alone else f"example {k} alone: {r.status_code} {r.text!r} != {alone!r}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        bad = [why for why in pool.map(one, range(48)) if why]
    assert not bad, "\n".join(bad[:5])


@pytest.mark.parametrize("family", SAMPLING, ids=[f.name for f in SAMPLING])
def test_a_clients_seed_tag_on_a_slot_reaches_vw(sampling, family):
    """`'seed=…` on a slot line is VW's own per-slot seed: the client's seeds give VW's answer for
    them, and a seed tag vw could misread is refused."""
    require_ready(sampling, family.name)
    want = sampling.printed[f"{family.name}/client"]
    r = post_text(sampling.stack, family.name, client_seeded(family.query))
    assert r.status_code == 200 and r.text == want, f"{r.status_code}\nvwfcgi: {r.text!r}\nvw -t:  {want!r}"
    bad = client_seeded(family.query).replace("'seed=c0-0 ", "'seed=c0:0 ", 1)
    r = post_text(sampling.stack, family.name, bad)
    assert r.status_code == 400 and "seed" in r.json()["error"], r.text
    r = post_text(sampling.stack, family.name, family.query)
    assert r.status_code == 200 and r.text == sampling.printed[family.name], r.text


# ---- refused or exact: --top, --search, a stored --active
REFUSAL_BOUND = 30  # seconds from start until --top/--search/--active are ready or refused


@pytest.fixture(scope="module")
def refusable(tmp_path_factory):
    """The stack with --top, --search, --active and a canary model. While it starts, the TCP ports
    its processes listen on are sampled (a stored --active makes vw listen during its load)."""
    ports: set[int] = set()

    def watch(stack: Stack):
        while not getattr(stack, "started", False):
            if stack.vwfcgi is not None:
                ports.update(listening_ports(descendants(stack.vwfcgi.pid) | {stack.vwfcgi.pid}))
            time.sleep(0.3)

    try:
        s = _serve(tmp_path_factory, [*REFUSABLE, CANARY], lambda f: f.query, bound=REFUSAL_BOUND,
                   during_start=watch)
    except AssertionError as error:
        pytest.fail(f"vwfcgi did not answer /healthz within {REFUSAL_BOUND}s with --top/--search/--active "
                    f"models (a load that hangs blocks start-up; ports listened on meanwhile: {sorted(ports)}): "
                    f"{str(error)[:3000]}")
    s.ports_seen = ports
    for f in REFUSABLE:  # the oracle VW gives (vw -t; --active with --simulation)
        s.printed[f.name] = oracle(f, s.model_dir, s.work, f.query)
    yield s
    _stop(s)


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports in LISTEN state held by any of `pids` (their socket inodes in /proc/net/tcp*)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("family", REFUSABLE, ids=[f.name for f in REFUSABLE])
def test_refused_at_load_or_exact(refusable, family):
    status = refusable.status.get(family.name)
    assert status, (f"{family.name}: neither ready nor refused within {REFUSAL_BOUND}s "
                    f"(a load that hangs)\n{refusable.stack.logs()}")
    if not status.get("ready"):
        error = status.get("last_error") or {}
        reason = error.get("reason", "") if isinstance(error, dict) else str(error)
        assert family.refusable in reason, \
            f"{family.name} refused, but last_error does not name --{family.refusable}: {error!r}"
        r = post_text(refusable.stack, family.name, family.query)
        assert r.status_code == 503 and r.headers["Content-Type"].startswith("application/json"), \
            f"a refused model answers {r.status_code} {r.text[:200]!r}"
        return
    want = refusable.printed[family.name]
    r = post_text(refusable.stack, family.name, family.query)
    assert r.status_code == 200 and r.text == want, f"\nvwfcgi: {r.status_code} {r.text!r}\nvw -t:  {want!r}"
    examples = examples_of(family.query)
    r = refusable.stack.predict(family.name, examples)
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]!r}"
    assert_json_equals_vw(r.json()["predictions"], examples, want)


def test_refusals_are_prompt(refusable):
    """A model the server cannot frame is refused at load, not after a 60 s probe timeout."""
    took = refusable.settle_seconds
    assert took < REFUSAL_BOUND and len(refusable.status) == len(REFUSABLE) + 1, \
        f"models took {took:.0f}s to be ready or refused: {sorted(refusable.status)}"


def test_other_models_answer_beside_refused_ones(refusable):
    require_ready(refusable, CANARY.name)
    r = post_text(refusable.stack, CANARY.name, CANARY.query)
    assert r.status_code == 200 and r.text == refusable.printed[CANARY.name], r.text


def test_stored_active_opens_no_port(refusable):
    """A model storing --active (no --simulation) must not make vw listen (0.0.0.0:26542)."""
    vw_pids = descendants(refusable.stack.vwfcgi.pid)
    ports = listening_ports(vw_pids | {refusable.stack.vwfcgi.pid}) | refusable.ports_seen
    assert ACTIVE_PORT not in ports and not ports, \
        f"vwfcgi or its vw children listened on TCP ports {sorted(ports)} (during start-up or now)"


# ---- tags VW does not print, and line ends VW accepts
TAB_LINES = ["t1\t|a x0:0.5", "'t2\t|a x0:0.5", "1 2\t|a x0:0.5", "0 1 0.5 t3\t|a x0:0.5"]


def test_tab_before_the_bar_is_no_tag_vw_prints(served):
    """VW prints no tag for `t1<TAB>|a ...` (a tab is not the space its tag rule looks for): the
    text reply must not show one either (issue 11: vwfcgi echoed `t1\\t`)."""
    require_ready(served, "squared")
    family = next(f for f in FAMILIES if f.name == "squared")
    text = "\n".join(TAB_LINES) + "\n"
    want = oracle(family, served.model_dir, served.work, text)
    r = post_text(served.stack, "squared", text)
    assert r.status_code == 200 and r.text == want, f"\nvwfcgi: {r.status_code} {r.text!r}\nvw -t:  {want!r}"
    r = served.stack.predict("squared", TAB_LINES)
    assert r.status_code == 200, r.text
    got, expected = r.json()["predictions"], [float(x) for x in want.split()]
    assert len(got) == len(expected) and all(close(g, w) for g, w in zip(got, expected)), (got, expected)


def test_json_string_ending_in_cr_is_read_as_vw_reads_it(served):
    """VW (and text/plain) accept a line ending in `\\r`; so must a JSON string."""
    require_ready(served, "squared")
    family = next(f for f in FAMILIES if f.name == "squared")
    want = oracle(family, served.model_dir, served.work, " |a x0:0.5\r\n |a x0:-0.5\n")
    r = post_text(served.stack, "squared", " |a x0:0.5\r\n |a x0:-0.5\n")
    assert r.status_code == 200 and r.text == want, f"\nvwfcgi: {r.status_code} {r.text!r}\nvw -t:  {want!r}"
    r = served.stack.predict("squared", [" |a x0:0.5\r", " |a x0:-0.5"])
    assert r.status_code == 200, r.text
    assert [round(x, 6) for x in r.json()["predictions"]] == [float(x) for x in want.split()]


@pytest.mark.parametrize("form", ["text", "json"])
def test_bom_before_the_bar_is_refused_or_read_as_vw_reads_it(served, form):
    """VW skips a BOM at the start of a line and prints no tag: 400 (a strict grammar may refuse
    the BOM) or VW's answer, never the BOM echoed as a tag."""
    require_ready(served, "squared")
    family = next(f for f in FAMILIES if f.name == "squared")
    line = "\ufeff|a x0:0.5"
    want = oracle(family, served.model_dir, served.work, line + "\n")
    if form == "text":
        r = post_text(served.stack, "squared", line + "\n")
    else:
        r = served.stack.predict("squared", [line])
    if r.status_code == 400:
        assert r.headers["Content-Type"].startswith("application/json"), r.text
        return
    assert r.status_code == 200, r.text
    if form == "text":
        assert r.text == want, f"\nvwfcgi: {r.text!r}\nvw -t:  {want!r}"
    else:
        assert r.json()["predictions"] == [float(want)], (r.text, want)
