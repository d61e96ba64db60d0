"""The Open Inference Protocol (KServe V2) and KServe V1 through nginx -> vwfcgi -> vw, driven by the
stock KServe Python SDK (`kserve.InferenceRESTClient`, pinned in scripts/install-deps.sh): answers equal
VW's own. Model metadata has no call in the SDK's REST client, so it is read with plain requests, as
are the protocol's error cases.
"""

import asyncio
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_LINE_BYTES,
    REFERENCE_VW,
    Stack,
    assert_cb_prediction,
    assert_json_error,
    assert_scalar_predictions,
    cb_example,
    cb_lines,
    features_to_text,
    logistic_features,
    model_version,
    oaa_features,
)


def sdk(protocol: str, call):
    """Runs `call(client)` (a coroutine) with a fresh SDK client of `protocol`."""
    async def run():
        async with InferenceRESTClient(RESTConfig(protocol=protocol, retries=0, timeout=30)) as client:
            return await call(client)
    return asyncio.run(run())


def examples_request(model: str, examples: list[str], request_id: str | None = None) -> InferRequest:
    """The SDK's request object: one BYTES tensor `examples` of shape [n]."""
    tensor = InferInput(name="examples", shape=[len(examples)], datatype="BYTES", data=examples)
    return InferRequest(model_name=model, infer_inputs=[tensor], request_id=request_id)


def v2_body(examples, *, name="examples", datatype="BYTES", shape=None) -> dict:
    """A V2 request body built by hand, for the malformed cases the SDK would not build."""
    return {"inputs": [{"name": name, "datatype": datatype, "shape": [len(examples)] if shape is None else shape,
                        "data": examples}]}


@pytest.fixture(scope="module")
def logistic_lines(reference):
    rng = random.Random(140)
    lines = [features_to_text(logistic_features(rng)) for _ in range(40)]
    return lines, [reference.predict("logistic", line) for line in lines]


@pytest.fixture(scope="module")
def oaa_lines(reference):
    rng = random.Random(141)
    lines = [features_to_text(oaa_features(rng)) for _ in range(40)]
    return lines, [reference.predict("oaa", line) for line in lines]


@pytest.fixture(scope="module")
def cb_texts(reference):
    """ADF examples as V2 elements: each example's lines joined by newlines."""
    rng = random.Random(142)
    examples = [cb_lines(cb_example(rng)) for _ in range(10)]
    return ["\n".join(lines) for lines in examples], [reference.predict("cb", lines) for lines in examples]


# ---------------------------------------------------------------- KServe V1 with the SDK
def test_kserve_v1_client_predicts_and_sees_the_server_live_and_the_model_ready(stack, logistic_lines):
    lines, want = logistic_lines
    base = stack.url("")
    for key in ("instances", "inputs"):  # KServe V1 reads both
        body = sdk("v1", lambda c, key=key: c.infer(base, {key: lines}, model_name="logistic"))
        assert_scalar_predictions(body["predictions"], want)
    assert sdk("v1", lambda c: c.is_server_live(base)) is True
    assert sdk("v1", lambda c: c.is_model_ready(base, "logistic")) is True


def test_root_answers_liveness(stack):
    r = stack.get("/")
    assert r.status_code == 200 and r.json() == {"status": "alive"}
    assert stack.request("HEAD", "/").status_code == 200
    assert stack.post("/", json={}).status_code == 405


# ---------------------------------------------------------------- KServe V2 with the SDK
def test_kserve_v2_client_sees_the_server_live_and_ready(stack):
    base = stack.url("")
    assert sdk("v2", lambda c: c.is_server_live(base)) is True
    assert sdk("v2", lambda c: c.is_server_ready(base)) is True


def test_kserve_v2_client_sees_models_ready_and_unknown_ones_not(stack):
    base = stack.url("")
    for model in ("logistic", "oaa", "cb"):
        assert sdk("v2", lambda c, model=model: c.is_model_ready(base, model)) is True
    assert sdk("v2", lambda c: c.is_model_ready(base, "nope")) is False


def test_kserve_v2_infer_scalar_is_fp32_equal_to_vw(stack, model_dir, logistic_lines):
    lines, want = logistic_lines
    response = sdk("v2", lambda c: c.infer(stack.url(""), examples_request("logistic", lines, "req-7"),
                                           model_name="logistic"))
    assert response.model_name == "logistic"
    assert response.id == "req-7"
    [output] = response.outputs
    assert (output.name, output.datatype, output.shape) == ("predictions", "FP32", [len(lines)])
    assert_scalar_predictions(output.data, want)


def test_kserve_v2_infer_multiclass_is_int64_equal_to_vw(stack, oaa_lines):
    lines, want = oaa_lines
    response = sdk("v2", lambda c: c.infer(stack.url(""), examples_request("oaa", lines), model_name="oaa"))
    [output] = response.outputs
    assert (output.name, output.datatype, output.shape) == ("predictions", "INT64", [len(lines)])
    assert output.data == want
    assert all(type(value) is int for value in output.data)


def test_kserve_v2_infer_action_probabilities_is_bytes_of_the_v1_list(stack, cb_texts):
    texts, want = cb_texts
    response = sdk("v2", lambda c: c.infer(stack.url(""), examples_request("cb", texts), model_name="cb"))
    [output] = response.outputs
    assert (output.name, output.datatype, output.shape) == ("predictions", "BYTES", [len(texts)])
    for element, expected in zip(output.data, want, strict=True):
        assert_cb_prediction(json.loads(element), expected)
    # The same list as V1 answers for the same examples.
    v1 = stack.predict("cb", texts).json()["predictions"]
    assert [json.loads(element) for element in output.data] == v1


@pytest.fixture(scope="module")
def json_stack(model_dir, tmp_path_factory):
    """The cb model again, as a `"input": "vw_json"` model (`cbj`): its V2 elements are VW JSON objects."""
    models = tmp_path_factory.mktemp("oip-models")
    shutil.copyfile(model_dir / "cb.vw", models / "cbj.vw")
    (models / "cbj.json").write_text(json.dumps({"input": "vw_json"}) + "\n")
    s = Stack(models).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def vw_json_pmfs(model: Path, contexts: list[dict], tmp: Path) -> list[dict]:
    """VW's own `-t --json` answers: {action: probability} per context."""
    data, out = tmp / "in.json", tmp / "out.txt"
    data.write_text("".join(json.dumps(c) + "\n" for c in contexts))
    subprocess.run([REFERENCE_VW, "-i", str(model), "-t", "--json", "-d", str(data), "-p", str(out), "--quiet"],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)
    lines = [line for line in out.read_text().splitlines() if line.strip()]
    assert len(lines) == len(contexts)
    return [{int(a): float(p) for a, p in (item.split(":") for item in line.split()[0].split(","))} for line in lines]


def test_kserve_v2_infer_vw_json_model_equals_vw(json_stack, tmp_path):
    rng = random.Random(143)
    contexts = []
    for _ in range(8):
        ex = cb_example(rng)
        contexts.append({**ex["shared"], "_multi": ex["actions"]})
    want = vw_json_pmfs(json_stack.model_dir / "cbj.vw", contexts, tmp_path)
    elements = [json.dumps(c) for c in contexts]
    response = sdk("v2", lambda c: c.infer(json_stack.url(""), examples_request("cbj", elements), model_name="cbj"))
    [output] = response.outputs
    assert output.datatype == "BYTES"
    for element, expected in zip(output.data, want, strict=True):
        assert_cb_prediction(json.loads(element), expected)


# ---------------------------------------------------------------- metadata and versions (plain HTTP)
def test_server_metadata(stack):
    r = stack.get("/v2")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "vwfcgi" and isinstance(body["version"], str) and body["extensions"] == []


@pytest.mark.parametrize("model,datatype", [("logistic", "FP32"), ("oaa", "INT64"), ("cb", "BYTES")])
def test_model_metadata_names_the_serving_version_and_tensors(stack, model_dir, model, datatype):
    version = model_version(model_dir, model)
    for path in (f"/v2/models/{model}", f"/v2/models/{model}/versions/{version}"):
        r = stack.get(path)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "name": model, "versions": [version], "platform": "vowpal_wabbit",
            "inputs": [{"name": "examples", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "predictions", "datatype": datatype, "shape": [-1]}],
        }
    assert stack.get(f"/v2/models/{model}/versions/{version}/ready").status_code == 200


def test_versioned_infer_answers_for_the_serving_version_only(stack, model_dir, logistic_lines, unharmed):
    lines, want = logistic_lines
    version = model_version(model_dir, "logistic")
    r = stack.post(f"/v2/models/logistic/versions/{version}/infer", json=v2_body(lines))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "logistic" and body["model_version"] == version and "id" not in body
    assert r.headers["X-Model-Version"] == version
    assert_scalar_predictions(body["outputs"][0]["data"], want)
    for path in ("/v2/models/logistic/versions/000000000000/infer", "/v2/models/logistic/versions/000000000000",
                 "/v2/models/logistic/versions/000000000000/ready"):
        method = stack.post if path.endswith("/infer") else stack.get
        assert_json_error(method(path, json=v2_body(lines)), 404, contains="000000000000")
    unharmed()


# ---------------------------------------------------------------- errors
GOOD = ["|a x0:0.5 |b y0:0.25 |c color=red"]


@pytest.mark.parametrize("case,path,body,status,contains", [
    ("wrong datatype", "/v2/models/logistic/infer", v2_body([1.5], datatype="FP32"), 400, "datatype BYTES"),
    ("shape mismatch", "/v2/models/logistic/infer", v2_body(GOOD * 2, shape=[3]), 400, "shape [3]"),
    ("missing input", "/v2/models/logistic/infer", {"inputs": []}, 400, "no input named \"examples\""),
    ("other input", "/v2/models/logistic/infer", v2_body(GOOD, name="input-0"), 400, "unknown input"),
    ("no inputs", "/v2/models/logistic/infer", {"id": "x"}, 400, "\"inputs\""),
    ("unknown output", "/v2/models/logistic/infer", {**v2_body(GOOD), "outputs": [{"name": "scores"}]}, 400,
     "unknown output"),
    ("invalid example", "/v2/models/logistic/infer", v2_body(GOOD + ["no bar here"]), 400, "instance 1"),
    ("unknown version", "/v2/models/logistic/versions/abc/infer", v2_body(GOOD), 404, "no version 'abc'"),
    ("unknown model", "/v2/models/nope/infer", v2_body(GOOD), 404, "nope"),
    ("unknown model metadata", "/v2/models/nope", None, 404, "nope"),
    ("unknown model ready", "/v2/models/nope/ready", None, 404, "nope"),
    ("too many examples", "/v2/models/logistic/infer", v2_body(GOOD * (MAX_BATCH + 1)), 413, "limit"),
])
def test_v2_bad_requests_get_the_protocol_status_and_a_json_error(stack, unharmed, logistic_lines, case, path, body,
                                                                  status, contains):
    r = stack.post(path, json=body) if body is not None else stack.get(path)
    assert_json_error(r, status, contains=contains)
    unharmed()
    lines, want = logistic_lines
    good = stack.post("/v2/models/logistic/infer", json=v2_body(lines))
    assert good.status_code == 200, good.text
    assert_scalar_predictions(good.json()["outputs"][0]["data"], want)


@pytest.mark.parametrize("body,ctype,status", [
    (b"not json", "application/json", 400),
    (b'{"inputs": [', "application/json", 400),
    (b"|a x0:1", "text/plain", 415),
    (b"\x00\x01", "application/octet-stream", 415),
])
def test_v2_body_must_be_json(stack, unharmed, body, ctype, status):
    assert_json_error(stack.post("/v2/models/logistic/infer", data=body, headers={"Content-Type": ctype}), status)
    unharmed()


def test_v2_limits_are_v1s(stack, unharmed):
    deep = {"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": GOOD}], "parameters": {}}
    node = deep["parameters"]
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    assert_json_error(stack.post("/v2/models/logistic/infer", json=deep), 400, contains="nesting")
    long_line = "|a " + " ".join(f"f{i}:1" for i in range(MAX_LINE_BYTES // 4))
    assert_json_error(stack.post("/v2/models/logistic/infer", json=v2_body([long_line])), 400, contains="instance 0")
    big = "|a " + " ".join(f"f{i}:1" for i in range(MAX_BODY_BYTES // 6))
    assert len(json.dumps(v2_body([big]))) > MAX_BODY_BYTES
    assert_json_error(stack.post("/v2/models/logistic/infer", json=v2_body([big])), 413)
    unharmed()


def test_v2_wrong_methods_are_405(stack):
    for method, path in (("GET", "/v2/models/logistic/infer"), ("POST", "/v2/models/logistic"),
                         ("POST", "/v2/health/live"), ("DELETE", "/v2")):
        r = stack.request(method, path)
        assert_json_error(r, 405)


def test_v2_requests_count_in_the_request_metrics(stack, logistic_lines):
    lines, _ = logistic_lines
    assert stack.post("/v2/models/logistic/infer", json=v2_body(lines)).status_code == 200
    assert stack.get("/v2/health/ready").status_code == 200
    samples = [s for family in text_string_to_metric_families(stack.get("/metrics").text) for s in family.samples
               if s.name == "vwfcgi_requests_total"]
    routes = {(s.labels["route"], s.labels["model"], s.labels["code"]) for s in samples if s.value > 0}
    assert ("v2_infer", "logistic", "200") in routes, sorted(routes)
    assert any(route == "v2_ready" and code == "200" for route, _, code in routes), sorted(routes)
    examples = [s for family in text_string_to_metric_families(stack.get("/metrics").text) for s in family.samples
                if s.name == "vwfcgi_examples_total" and s.labels.get("model") == "logistic"]
    assert examples and examples[0].value >= len(lines)
