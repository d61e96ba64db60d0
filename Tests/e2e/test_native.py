"""The native scorer end to end (SPEC §11): nginx -> vwfcgi answering in-process, byte for byte
what the real vw prints, only for models verified against vw at load; everything else on vw."""

import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
import vowpalwabbit

from conftest import ROOT, Stack, descendants, wait_until

VW = str(ROOT / "bin" / "vw")


def _train(path: Path, args: str, lines: list[str]) -> None:
    ws = vowpalwabbit.Workspace(f"{args} --quiet -f {path}")
    for line in lines:
        ws.learn(line)
    ws.finish()


def _examples(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        a = " ".join(f"{rng.choice(['x', 'y', '12', 'é'])}:{rng.uniform(-3, 3):.4f}" for _ in range(rng.randrange(4)))
        b = " ".join(rng.choice(["p", "q", "7", "r:0.5", "s:1e-40"]) for _ in range(rng.randrange(4)))
        out.append(f"{rng.choice(['', '1 1 0.5 '])}|a {a} |b {b}")
    return out


def _vw_answers(model: Path, lines: list[str], extra: tuple[str, ...] = ()) -> str:
    done = subprocess.run([VW, "--quiet", "-i", str(model), "-t", "-d", "/dev/stdin", "-p", "/dev/stdout", *extra],
                          input="".join(line + "\n" for line in lines), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def native_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("native-models")
    rng = random.Random(5)
    training = [f"{rng.choice(['1', '-1'])} " + line.split("|", 1)[1].join(["|", ""]) for line in _examples(rng, 500)]
    _train(d / "linear.vw", "--loss_function logistic -q ab --cubic abb", training)
    (d / "linear.json").write_text(json.dumps({"vw_args": ["--link", "logistic"]}))
    _train(d / "pinned.vw", "-q ab", training)
    (d / "pinned.json").write_text(json.dumps({"engine": "vw"}))
    _train(d / "oaa.vw", "--oaa 3 -q ab", [f"{rng.randrange(1, 4)} |a x:{rng.random():.3f} |b y:{rng.random():.3f}" for _ in range(300)])
    _train(d / "nn.vw", "--nn 2", training)
    return d


@pytest.fixture(scope="module")
def native_stack(native_dir):
    s = Stack(native_dir, extra_args=("--engine", "auto", "--native-shadow-every", "7")).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def test_verified_model_serves_natively_and_status_says_so(native_stack):
    status = native_stack.get("/v1/models/linear").json()
    assert status["engine"] == "native", status
    assert "engine_reason" not in status


def test_native_text_answers_equal_vw_byte_for_byte(native_stack, native_dir):
    lines = _examples(random.Random(7), 2000)
    for start in range(0, len(lines), 500):
        batch = lines[start:start + 500]
        r = native_stack.post("/v1/models/linear:predict", data="".join(line + "\n" for line in batch),
                              headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        assert r.text == _vw_answers(native_dir / "linear.vw", batch, ("--link", "logistic"))


def test_native_json_predictions_equal_vw(native_stack, native_dir):
    lines = _examples(random.Random(8), 200)
    r = native_stack.predict("linear", lines)
    assert r.status_code == 200, r.text
    want = [float(x) for x in _vw_answers(native_dir / "linear.vw", lines, ("--link", "logistic")).split()]
    assert r.json()["predictions"] == want


def test_unsupported_model_stays_on_vw_with_the_reason(native_stack):
    status = native_stack.get("/v1/models/nn").json()
    assert status["engine"] == "vw"
    assert "--nn" in status["engine_reason"]


def test_oaa_model_serves_natively_and_equals_vw(native_stack, native_dir):
    assert native_stack.get("/v1/models/oaa").json()["engine"] == "native"
    lines = [f"|a x:{x / 50:.3f} |b y:{(x * 7 % 50) / 50:.3f}" for x in range(300)]
    r = native_stack.post("/v1/models/oaa:predict", data="".join(line + "\n" for line in lines),
                          headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.text == _vw_answers(native_dir / "oaa.vw", lines)
    assert native_stack.predict("oaa", lines[:3]).json()["predictions"] == [int(x) for x in r.text.split()[:3]]


def test_model_json_engine_overrides_the_command_line(native_stack):
    status = native_stack.get("/v1/models/pinned").json()
    assert status["engine"] == "vw"
    assert "configured" in status["engine_reason"]


def test_shadow_checks_find_no_mismatch(native_stack):
    for seed in range(30):
        r = native_stack.predict("linear", _examples(random.Random(100 + seed), 20))
        assert r.status_code == 200
    metrics = native_stack.get("/metrics").text
    assert 'vwfcgi_native_mismatches_total{model="linear"}' not in metrics
    assert native_stack.get("/v1/models/linear").json()["engine"] == "native"


def test_native_answers_while_vw_is_stopped(native_dir):
    """The request path of a native model touches no pipe: answers come while its vw is frozen."""
    s = Stack(native_dir, extra_args=("--engine", "auto", "--native-shadow-every", "0", "--timeout", "1")).start()
    try:
        frozen = [pid for pid in descendants(s.vwfcgi.pid) if "linear" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        assert frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            r = s.predict("linear", _examples(random.Random(9), 10))
            assert r.status_code == 200, r.text
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
    finally:
        problems = s.stop()
        assert not problems, "\n".join(problems)


def test_a_shadow_mismatch_sends_the_model_back_to_vw(native_dir, tmp_path, monkeypatch):
    """A vw that answers differently from the native scorer (here: one that reads the untrained
    feature `magic` as the trained `x:3`) is caught by the shadow check: counted, logged, and the
    model is back on vw."""
    import conftest
    wrapper = tmp_path / "vw-magic"
    wrapper.write_text(f"#!/bin/sh\nsed -u 's/ magic / x:3 /g' | exec {conftest.VW_COMMAND} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "VW_COMMAND", str(wrapper))
    s = Stack(native_dir, extra_args=("--engine", "auto", "--native-shadow-every", "1")).start()
    try:
        assert s.get("/v1/models/linear").json()["engine"] == "native"
        plain = s.predict("linear", ["|a x:0.5 |b p"])
        assert plain.status_code == 200
        assert s.get("/v1/models/linear").json()["engine"] == "native"
        r = s.predict("linear", ["|a magic y:0.5 |b p"])
        assert r.status_code == 200, r.text
        status = s.get("/v1/models/linear").json()
        assert status["engine"] == "vw", status
        assert "differed" in status["engine_reason"]
        assert 'vwfcgi_native_mismatches_total{model="linear"} 1' in s.get("/metrics").text
        assert "native scorer mismatch" in s.vwfcgi_log.read_text(errors="replace")
    finally:
        problems = s.stop()
        assert not problems, "\n".join(problems)
