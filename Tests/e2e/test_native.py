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


def _train(path: Path, args: str, lines: list) -> None:
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
    adf = [_adf_example(rng, labelled=True) for _ in range(400)]
    # Personalizer's documented default policy (SPEC §9), and an explorer the scorer does not reproduce.
    _train(d / "personalizer.vw", "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::", adf)
    _train(d / "softmax.vw", "--cb_explore_adf --softmax --lambda 1 -q ::", adf)
    _train(d / "rankjson.vw", "--cb_explore_adf --epsilon 0.2 -q ::", adf)
    (d / "rankjson.json").write_text(json.dumps({"input": "vw_json", "loop": {"update_interval": "1h"}}))
    _train(d / "pzjson.vw", "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::", adf)
    (d / "pzjson.json").write_text(json.dumps({"input": "vw_json", "loop": {"update_interval": "1h", "reward_range": [0, 1]}}))
    _train(d / "linjson.vw", "--loss_function logistic -q ab", training)
    (d / "linjson.json").write_text(json.dumps({"input": "vw_json", "vw_args": ["--link", "logistic"]}))
    _train(d / "ccbjson.vw", "--ccb_explore_adf --epsilon 0.2", [])
    (d / "ccbjson.json").write_text(json.dumps({"input": "vw_json"}))
    return d


def _adf_example(rng: random.Random, labelled: bool = False, tag: str = "") -> list[str]:
    """An ADF example's lines: an optional shared line, 1 to 8 actions, now and then a duplicate (a tie)."""
    lines = []
    if rng.random() < 0.8:
        feats = " ".join(f"{rng.choice(['age', 'hour', '7', 'é'])}:{rng.uniform(-2, 2):.3f}" for _ in range(rng.randrange(4)))
        lines.append(f"shared {tag}|u {feats} |c {rng.choice(['mobile', 'desktop', 'tv'])}")
    actions = 1 + rng.randrange(8)
    chosen = rng.randrange(actions)
    for i in range(actions):
        if i > 0 and rng.random() < 0.15:
            line = lines[-1].split("|", 1)[1].join(["|", ""])
        else:
            line = f"|a id{rng.randrange(12)} {rng.choice(['sports', 'news', 'music'])} |b len:{rng.uniform(0, 5):.2f}"
        if labelled and i == chosen:
            line = f"{i}:{rng.choice(['0', '-1', '1'])}:{rng.choice(['0.2', '0.5', '0.9'])} " + line
        lines.append(line)
    return lines


def _adf_text(examples: list[list[str]]) -> str:
    return "".join("".join(line + "\n" for line in example) + "\n" for example in examples)


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


def _predictions_counted(stack, model: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in stack.get("/metrics").text.splitlines()
               if line.startswith("vwfcgi_requests_total{") and f'model="{model}"' in line
               and 'route="predict"' in line and 'code="200"' in line)


def test_shadow_checks_find_no_mismatch(native_stack):
    before = _predictions_counted(native_stack, "linear")
    for seed in range(30):
        r = native_stack.predict("linear", _examples(random.Random(100 + seed), 20))
        assert r.status_code == 200
    metrics = native_stack.get("/metrics").text
    assert 'vwfcgi_native_mismatches_total{model="linear"}' not in metrics
    # Every 7th request is a shadow check's turn: the poller hands it to a thread that may wait, and only
    # that thread's answer is counted.
    assert "needs_worker" not in metrics
    assert _predictions_counted(native_stack, "linear") - before == 30
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


def test_health_and_native_answers_come_while_every_worker_waits_for_vw(native_dir):
    """Pollers answer what waits for nothing: with one poller and one other thread, one of them held
    by a request to a model whose vw is frozen and two more such requests queued, /healthz, /metrics,
    the model list, a model's status, V2's health and metadata and native predictions (V1 and V2)
    still answer, equal to vw; a thread per connection would have queued them behind the held ones.
    Once vw runs again, the held and the queued requests are answered, equal to vw."""
    import threading
    s = Stack(native_dir, extra_args=("--engine", "auto", "--native-shadow-every", "0", "--threads", "1",
                                      "--event-threads", "1", "--timeout", "60")).start()
    frozen = []
    try:
        frozen = [pid for pid in descendants(s.vwfcgi.pid) if "/nn" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        assert frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        held = []
        workers = [threading.Thread(target=lambda: held.append(s.predict("nn", ["|a x:1"])), daemon=True) for _ in range(3)]
        for worker in workers:
            worker.start()
        # One reaches the engine and waits for vw; the two others wait for a thread, queued behind it
        # (so would a model's loop document, which may read files: only what waits for nothing is answered
        # by the poller).
        lines = _examples(random.Random(21), 20)
        for _ in range(3):
            assert s.get("/healthz").status_code == 200
            assert 'vwfcgi_queue_depth{model="nn"}' in s.get("/metrics").text
            assert {m["name"] for m in s.get("/v1/models").json()["models"]} >= {"nn", "linear"}
            for probe in ("/v2/health/live", "/v2/health/ready", "/v2/models/nn/ready", "/v2/models/nn"):
                assert s.get(probe).status_code == 200, probe
            assert s.get("/v1/models/nn").json()["engine"] == "vw"
            r = s.predict("linear", lines)
            assert r.status_code == 200, r.text
            v2 = s.post("/v2/models/linear/infer", json={"inputs": [{"name": "examples", "shape": [1], "datatype": "BYTES",
                                                                     "data": [lines[0]]}]})
            assert v2.status_code == 200, v2.text
        assert all(worker.is_alive() for worker in workers) and not held, "a request held by the frozen vw was answered"
        want = [float(x) for x in _vw_answers(native_dir / "linear.vw", lines, ("--link", "logistic")).split()]
        assert r.json()["predictions"] == want
        assert v2.json()["outputs"][0]["data"] == want[:1]
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = []
        for worker in workers:
            worker.join(60)
        assert len(held) == 3 and all(h.status_code == 200 for h in held), [h.text for h in held]
        nn = float(_vw_answers(native_dir / "nn.vw", ["|a x:1"]))
        assert all(h.json()["predictions"] == [nn] for h in held)
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass  # replaced by the supervisor meanwhile
        problems = s.stop()
        assert not problems, "\n".join(problems)


def test_a_shadow_mismatch_sends_the_model_back_to_vw(native_dir, tmp_path, monkeypatch):
    """A vw that answers differently from the native scorer (here: one that reads the untrained
    feature `magic` as the trained `x:3`) is caught by the shadow check: counted, logged, and the
    model is back on vw."""
    import conftest
    wrapper = tmp_path / "vw-magic"
    wrapper.write_text(f"#!/bin/sh\nsed -u -e 's/ magic / x:3 /g' -e 's/\"magic\":1/\"x\":3/g' | exec {conftest.VW_COMMAND} \"$@\"\n")
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
        # The same for a VW JSON model: the shadow check compares its JSON answers too.
        assert s.get("/v1/models/linjson").json()["engine"] == "native"
        assert s.predict("linjson", [{"a": {"x": 0.5}, "b": {"p": "red"}}]).status_code == 200
        assert s.get("/v1/models/linjson").json()["engine"] == "native"
        r = s.predict("linjson", [{"a": {"magic": 1, "y": 0.5}, "b": {"p": "red"}}])
        assert r.status_code == 200, r.text
        status = s.get("/v1/models/linjson").json()
        assert status["engine"] == "vw" and "differed" in status["engine_reason"], status
        assert 'vwfcgi_native_mismatches_total{model="linjson"} 1' in s.get("/metrics").text
    finally:
        problems = s.stop()
        assert not problems, "\n".join(problems)


def _pmf(answer: str) -> dict[int, float]:
    return {int(a): float(p) for a, p in (pair.split(":") for pair in answer.split()[0].split(","))}


def test_cb_explore_adf_model_serves_natively_and_equals_vw(native_stack, native_dir):
    """Personalizer's default policy (`--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::`) is native
    and answers text :predict byte for byte as `vw -t` does, and as vowpalwabbit's own predict."""
    status = native_stack.get("/v1/models/personalizer").json()
    assert status["engine"] == "native", status
    rng = random.Random(21)
    examples = [_adf_example(rng, tag=rng.choice(["", "'t1 "])) for _ in range(600)]
    got = ""
    for start in range(0, len(examples), 200):
        r = native_stack.post("/v1/models/personalizer:predict", data=_adf_text(examples[start:start + 200]),
                              headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        got += r.text
    want = _vw_answers(native_dir / "personalizer.vw", [line for example in examples for line in example + [""]])
    assert got == want
    answers = got.split("\n\n")[:-1]
    assert len(answers) == len(examples)
    assert any(list(_pmf(a).values()).count(max(_pmf(a).values())) > 1 for a in answers), "some best actions tie"
    ws = vowpalwabbit.Workspace(f"-i {native_dir / 'personalizer.vw'} -t --quiet")
    try:
        for example, answer in zip(examples, answers):
            probabilities = ws.predict([line.replace("'t1 ", "") for line in example])
            assert _pmf(answer) == pytest.approx(dict(enumerate(probabilities)), abs=1e-6)
    finally:
        ws.finish()


def test_cb_explore_adf_json_predictions_equal_the_text_answers(native_stack):
    rng = random.Random(22)
    examples = [_adf_example(rng) for _ in range(50)]
    r = native_stack.predict("personalizer", ["\n".join(example) for example in examples])
    assert r.status_code == 200, r.text
    text = native_stack.post("/v1/models/personalizer:predict", data=_adf_text(examples), headers={"Content-Type": "text/plain"}).text
    for prediction, answer in zip(r.json()["predictions"], text.split("\n\n")):
        assert {item["action"]: item["probability"] for item in prediction} == pytest.approx(_pmf(answer), abs=1e-6)
    assert len(r.json()["predictions"]) == len(examples)


def test_adf_shadow_checks_find_no_mismatch(native_stack):
    rng = random.Random(23)
    for _ in range(30):
        r = native_stack.post("/v1/models/personalizer:predict", data=_adf_text([_adf_example(rng) for _ in range(5)]),
                              headers={"Content-Type": "text/plain"})
        assert r.status_code == 200
    assert 'vwfcgi_native_mismatches_total{model="personalizer"}' not in native_stack.get("/metrics").text
    assert native_stack.get("/v1/models/personalizer").json()["engine"] == "native"


def test_other_explorers_and_ccb_json_models_stay_on_vw_with_the_reason(native_stack):
    softmax = native_stack.get("/v1/models/softmax").json()
    assert softmax["engine"] == "vw", softmax
    assert "--softmax" in softmax["engine_reason"]
    ccb = native_stack.get("/v1/models/ccbjson").json()
    assert ccb["engine"] == "vw", ccb


def _json_context(rng: random.Random, actions: int) -> dict:
    """A VW JSON context as :rank takes it: nested namespaces, strings with spaces, numbers, booleans, arrays,
    `_text`, Personalizer-style arrays of objects; a duplicate action now and then (a tie)."""
    def features() -> dict:
        out = {}
        if rng.random() < 0.7:
            out["u"] = {"age": round(rng.uniform(-2, 2), 3), "city": rng.choice(["Paris", "New York", "São Paulo", "a:b|c"])}
        if rng.random() < 0.5:
            out["c"] = [{"device": rng.choice(["mobile", "desktop"])}, {"hour": rng.randrange(24), "weekend": rng.random() < 0.5}]
        if rng.random() < 0.3:
            out["v"] = [rng.uniform(-1, 1) for _ in range(rng.randrange(4))]
        if rng.random() < 0.3:
            out["_text"] = rng.choice(["hello world", "é à", "x:1 y|2"])
        return out
    acts = []
    for i in range(actions):
        if i > 0 and rng.random() < 0.15:
            acts.append(dict(acts[-1]))
        else:
            acts.append({"a": {"id": f"id{rng.randrange(12)}", "topic": rng.choice(["sports", "news", "music"])},
                         "b": {"len": round(rng.uniform(0, 5), 2)}, **({"x": True} if rng.random() < 0.5 else {})})
    return {**features(), "_multi": acts}


def _package_pmfs(model: Path, contexts: list[dict]) -> list[dict[int, float]]:
    """The PMF the vowpalwabbit package computes for each VW JSON context (`--json`, `-t`)."""
    ws = vowpalwabbit.Workspace(f"-i {model} -t --json --quiet")
    try:
        pmfs = []
        for context in contexts:
            examples = ws.parse(json.dumps(context))
            pmfs.append(dict(enumerate(ws.predict(examples))))
            ws.finish_example(examples)
        return pmfs
    finally:
        ws.finish()


def test_vw_json_model_serves_natively_and_rank_takes_the_native_pmf(native_stack, native_dir):
    """A vw_json model is proven at load on JSON probes and serves natively: :rank's PMF (logged before the
    answer) equals the vowpalwabbit package's for the same context, and vw -t --json's byte for byte through
    :predict; shadow checks on JSON find no mismatch."""
    status = native_stack.get("/v1/models/rankjson").json()
    assert status["engine"] == "native", status
    rng = random.Random(31)
    contexts = [_json_context(rng, 1 + rng.randrange(8)) for _ in range(120)]
    pmfs = _package_pmfs(native_dir / "rankjson.vw", contexts)
    for index, (context, pmf) in enumerate(zip(contexts, pmfs)):
        r = native_stack.post("/v1/models/rankjson:rank", json={"event_id": f"native-json-{index}", "context": context})
        assert r.status_code == 200, r.text
        ranking = {item["action"]: item["probability"] for item in r.json()["ranking"]}
        assert ranking == pytest.approx(pmf, abs=1e-6), (context, ranking, pmf)
    r = native_stack.post("/v1/models/rankjson:predict", data="".join(json.dumps(c) + "\n" for c in contexts),
                          headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.text == _vw_answers(native_dir / "rankjson.vw", [json.dumps(c) for c in contexts], ("--json",))
    assert 'vwfcgi_native_mismatches_total{model="rankjson"}' not in native_stack.get("/metrics").text
    assert native_stack.get("/v1/models/rankjson").json()["engine"] == "native"
    decisions = [json.loads(line) for p in (native_stack.state_dir / "rankjson" / "log").glob("*.dsjson")
                 for line in p.read_text().splitlines() if '"c"' in line]
    assert {d["EventId"] for d in decisions} >= {f"native-json-{i}" for i in range(len(contexts))}


def test_personalizer_rank_route_takes_the_native_pmf(native_stack, native_dir):
    """The Personalizer rank route (mapped to VW JSON with `FromUrl` and `_multi`, SPEC §9) on a native model:
    its ranking equals the vowpalwabbit package's PMF for the mapped context."""
    assert native_stack.get("/v1/models/pzjson").json()["engine"] == "native"
    acts = [{"id": a, "features": [{"Content": {"topic": a}}, {"len": float(i + 1)}]}
            for i, a in enumerate(["news", "sports", "music", "travel"])]
    rng = random.Random(32)
    for index in range(20):
        ctx = [{"User": {"type": rng.choice(["student", "parent"])}}, {"Time": {"hour": f"h{rng.randrange(24)}"}, "weekend": rng.random() < 0.5}]
        mapped = {"FromUrl": ctx, "_multi": [{"_tag": a["id"], "j": a["features"]} for a in acts]}
        pmf = _package_pmfs(native_dir / "pzjson.vw", [mapped])[0]
        r = native_stack.post("/loops/pzjson/personalizer/v1.0/rank",
                              json={"contextFeatures": ctx, "actions": acts, "eventId": f"pz-native-{index}"})
        assert r.status_code in (200, 201), r.text
        got = {item["id"]: item["probability"] for item in r.json()["ranking"]}
        assert got == pytest.approx({a["id"]: pmf[i] for i, a in enumerate(acts)}, abs=1e-6)
    assert native_stack.get("/v1/models/pzjson").json()["engine"] == "native"


def test_single_line_vw_json_model_serves_natively_and_equals_vw(native_stack, native_dir):
    """A linear vw_json model (logistic link, interactions) is native and answers :predict as vw -t --json does."""
    assert native_stack.get("/v1/models/linjson").json()["engine"] == "native", str(native_stack.get("/v1/models/linjson").json().get("engine_reason"))
    rng = random.Random(33)
    objects = []
    for _ in range(300):
        obj = {"a": {rng.choice(["x", "y", "12", "é"]): round(rng.uniform(-3, 3), 4) for _ in range(rng.randrange(4))},
               "b": {"p": rng.choice(["red", "a b", "x:y|z"]), "q": rng.random() < 0.5}, "v": [rng.uniform(-1, 1), None, 2]}
        if rng.random() < 0.3:
            obj["_text"] = "hello wörld 7"
        objects.append(obj)
    lines = [json.dumps(o, ensure_ascii=rng.random() < 0.5) for o in objects]
    r = native_stack.post("/v1/models/linjson:predict", data="".join(line + "\n" for line in lines), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.text == _vw_answers(native_dir / "linjson.vw", lines, ("--json", "--link", "logistic"))
    assert 'vwfcgi_native_mismatches_total{model="linjson"}' not in native_stack.get("/metrics").text
