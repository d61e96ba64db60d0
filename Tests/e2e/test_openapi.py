"""docs/openapi.yaml against the running stack (issue 14): GET /openapi.json (nginx) is the
document, and every request the document marks with `x-replay` gets the documented status, its
body validates against the documented schema and has the example's shape (byte for byte where
the example says `x-exact`), with the documented headers. The conventions are at the top of
docs/openapi.yaml; Tests/deploy/test_openapi.py checks the marks are complete.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from conftest import REFERENCE_VW, Stack, train_small_logistic

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())
METHODS = ("get", "put", "post", "delete", "patch")
API_KEY = "openapi-replay-key-5b1c"



# ---------------------------------------------------------------- the document
def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_examples(operation) -> dict:
    """{example key: (status, media type, example)}."""
    out = {}
    for status, response in operation["responses"].items():
        for media, content in resolve(response).get("content", {}).items():
            for key, example in content.get("examples", {}).items():
                out[key] = (int(status), media, resolve(example))
    return out


@dataclass
class Replay:
    method: str
    path: str
    key: str
    status: int
    path_values: dict
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    example: dict | None = None  # the documented response example, if any
    media: str | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}#{self.key}"


def replays() -> list[Replay]:
    out = []
    for path, item in DOCUMENT["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if not operation:
                continue
            answers = response_examples(operation)
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                for key, example in content.get("examples", {}).items():
                    value = example["value"]
                    body = value.encode() if isinstance(value, str) else json.dumps(value).encode()
                    status, answer_media, answer = answers[key]
                    out.append(Replay(method.upper(), path, key, status, example["x-replay"],
                                      {"Content-Type": media}, body, answer, answer_media))
            for mark in operation.get("x-replay", []):
                key = mark.get("example") or f"status-{mark['status']}"
                status, answer_media, answer = answers[mark["example"]] if "example" in mark \
                    else (int(mark["status"]), None, None)
                body = mark.get("body")
                out.append(Replay(mark.get("method", method).upper(), path, key, status, mark.get("path", {}),
                                  dict(mark.get("headers", {})), None if body is None else body.encode(),
                                  answer, answer_media))
    return out


REPLAYS = replays()
CASES = [pytest.param(r, id=r.id) for r in REPLAYS]


def schema_of(replay: Replay, media: str):
    item = DOCUMENT["paths"][replay.path]
    # The replayed method's operation (a mark may send another method, e.g. to get a 405: then the first one's).
    operation = item.get(replay.method.lower()) or item[next(m for m in METHODS if m in item)]
    response = resolve(operation["responses"][str(replay.status)])
    return response, response.get("content", {}).get(media, {}).get("schema")


def validator(schema):
    """OpenAPI 3.1's dialect (JSON Schema 2020-12), `#/components/...` resolving in the document."""
    try:
        from openapi_schema_validator import OAS31Validator as Validator
    except ImportError:  # openapi-spec-validator brings it; jsonschema alone is enough
        from jsonschema import Draft202012Validator as Validator
    return Validator({**schema, "components": DOCUMENT["components"]})


# ---------------------------------------------------------------- models and stack
def _train_ranker(models: Path, work: Path) -> None:
    """A VW JSON contextual bandit (--cb_explore_adf) from a synthetic dsjson log: user u likes action u."""
    rng = random.Random(5)
    log = work / "ranker.dsjson"
    users = ["alice", "bob", "carol"]
    with log.open("w") as f:
        for i in range(600):
            u, a = rng.randrange(3), rng.randrange(3)
            context = {"User": {"id": users[u]}, "_multi": [{"Action": {"t": f"a{k}"}} for k in range(3)]}
            f.write(json.dumps({"_label_cost": -1 if a == u else 0, "_label_probability": 0.3333,
                                "_label_Action": a + 1, "_labelIndex": a, "o": [],
                                "a": [a + 1] + [k + 1 for k in range(3) if k != a], "p": [0.3333] * 3,
                                "c": context, "EventId": f"t{i}"}) + "\n")
    subprocess.run([REFERENCE_VW, "--dsjson", "--cb_explore_adf", "--epsilon", "0.2", "-q", "UA", "--random_seed", "3",
                    "-d", str(log), "-f", str(models / "ranker.vw"), "--quiet"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    (models / "ranker.json").write_text(json.dumps({"input": "vw_json", "loop": {"reward_wait": "1s"}}) + "\n")
    # A multislot (--ccb_explore_adf) loop model, untrained.
    subprocess.run([REFERENCE_VW, "--ccb_explore_adf", "--json", "-d", "/dev/null", "-f", str(models / "slotter.vw"), "--quiet"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    (models / "slotter.json").write_text(json.dumps({"input": "vw_json", "loop": {"reward_wait": "1s"}}) + "\n")


@pytest.fixture(scope="module")
def openapi_stack(model_dir, tmp_path_factory):
    """The models the document's examples name: logistic, oaa, cb (conftest), ranker, slotter, learner."""
    models = tmp_path_factory.mktemp("openapi-models")
    for name in ("logistic", "oaa", "cb"):
        for suffix in (".vw", ".json"):
            if (model_dir / f"{name}{suffix}").exists():
                shutil.copy(model_dir / f"{name}{suffix}", models / f"{name}{suffix}")
    _train_ranker(models, tmp_path_factory.mktemp("openapi-train"))
    train_small_logistic(models / "learner.vw", seed=7)
    # A single-line model with a loop (for :learn); no update runs during the test.
    (models / "learner.json").write_text(json.dumps({"loop": {"update_interval": "1h"}}) + "\n")
    # With API keys, as the Kubernetes deployment runs: every replay carries the key, but the 401 ones.
    keys = tmp_path_factory.mktemp("openapi-keys") / "api-keys"
    keys.write_text(API_KEY + "\n")
    s = Stack(models, state_dir=tmp_path_factory.mktemp("openapi-state"), extra_args=("--api-key-file", str(keys))).start()
    s.session.headers["Authorization"] = f"Bearer {API_KEY}"
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def served_version(stack: Stack, name: str) -> str:
    r = stack.get(f"/v1/models/{name}")
    assert r.status_code == 200 and r.json()["ready"], f"model {name} does not serve: {r.status_code} {r.text[:200]}"
    return r.json()["version"]


# ---------------------------------------------------------------- tests
def test_replay_cases_cover_the_document():
    assert len(REPLAYS) > 40
    documented = {(m.upper(), p) for p, item in DOCUMENT["paths"].items() for m in METHODS if m in item}
    replayed = {(r.method, r.path) for r in REPLAYS}
    assert documented <= replayed, f"operations never replayed: {sorted(documented - replayed)}"
    ids = [r.id for r in REPLAYS]
    assert len(ids) == len(set(ids)), "two replays with one id"


def test_served_document_is_the_yaml(openapi_stack):
    r = openapi_stack.get("/openapi.json")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == DOCUMENT
    assert openapi_stack.post("/openapi.json", data=b"").status_code == 405


@pytest.mark.parametrize("replay", CASES)
def test_replay(openapi_stack, replay: Replay):
    path = replay.path
    for name, value in replay.path_values.items():
        if name == "version" and value == "served":
            value = served_version(openapi_stack, replay.path_values["name"])
        path = path.replace("{" + name + "}", quote(value, safe=""))
    r = openapi_stack.request(replay.method, path, data=replay.body, headers=replay.headers)
    assert r.status_code == replay.status, \
        f"{replay.method} {path}: want {replay.status}, got {r.status_code}: {r.text[:300]!r}"

    media = r.headers.get("Content-Type", "")
    response, schema = schema_of(replay, replay.media or "application/json")
    documented = response.get("content", {})
    if documented:
        bases = {m.split(";")[0].strip() for m in documented}
        assert media.split(";")[0].strip() in bases, f"Content-Type {media!r}, documented {sorted(documented)}"
    for header in response.get("headers", {}):
        if header != "Retry-After":
            assert header in r.headers, f"documented header {header} missing: {dict(r.headers)}"
    if "X-Model-Version" in response.get("headers", {}):
        assert len(r.headers["X-Model-Version"]) == 12

    if media.startswith("application/json") and documented:
        body = r.json()
        schema = schema or documented.get("application/json", {}).get("schema")
        if schema:
            errors = list(validator(schema).iter_errors(body))
            assert not errors, f"{replay.id}: the answer does not match its schema: {errors[0].message}\n{body}"
        if replay.example is not None:
            want = replay.example["value"]
            if replay.example.get("x-exact"):
                assert body == want
            elif isinstance(want, dict):
                assert set(want) <= set(body), f"keys {sorted(set(want) - set(body))} missing from {body}"
        if isinstance(body, dict) and "version" in body and "X-Model-Version" in r.headers:
            assert body["version"] == r.headers["X-Model-Version"]
        if isinstance(body, dict) and "model_version" in body and "X-Model-Version" in r.headers:
            assert body["model_version"] == r.headers["X-Model-Version"]
    elif replay.example is not None:
        want = replay.example["value"]
        assert isinstance(want, str) and r.text, r.text
        if replay.path.endswith(":predict"):
            assert len(r.text.splitlines()) == len(want.splitlines()), r.text
