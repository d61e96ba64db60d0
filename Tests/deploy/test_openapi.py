"""docs/openapi.yaml: a valid OpenAPI 3.1 document (openapi-spec-validator, from PyPI), whose
examples match their schemas and whose replay marks are complete; docs/openapi.json (served by
nginx as GET /openapi.json) is its fresh rendering. Tests/e2e/test_openapi.py replays it."""

import json
import re
import sys

import pytest
import yaml

from conftest import ROOT, POD_NGINX_ENV, render_nginx, run

SOURCE = ROOT / "docs/openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(SOURCE.read_text())


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(document, node):
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_examples(document, operation):
    """{example key: (status, media type, example object, schema)} of an operation's responses."""
    out = {}
    for status, response in operation["responses"].items():
        response = resolve(document, response)
        for media, content in response.get("content", {}).items():
            for key, example in content.get("examples", {}).items():
                assert key not in out, f"response example {key!r} appears twice"
                out[key] = (int(status), media, resolve(document, example), content.get("schema"))
    return out


def schema_validator(document, schema):
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) whose `#/components/...` refs
    resolve in the document: the components ride along as an unknown (ignored) keyword."""
    from openapi_schema_validator import OAS31Validator
    return OAS31Validator({**schema, "components": document["components"]})


def test_validates_as_openapi_3_1(document):
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_json_copy_is_fresh():
    result = run([sys.executable, ROOT / "docs/generate.py", "--check"])
    assert result.returncode == 0, result.stderr
    assert json.loads((ROOT / "docs/openapi.json").read_text()) == yaml.safe_load(SOURCE.read_text())


def test_examples_match_their_schemas(document):
    """Every response example, and every request example meant to succeed, validates."""
    checked = 0
    for path, method, operation in operations(document):
        responses = response_examples(document, operation)
        for key, (status, media, example, schema) in responses.items():
            if schema is None or not media.startswith("application/json"):
                continue
            errors = list(schema_validator(document, schema).iter_errors(example["value"]))
            assert not errors, f"{method.upper()} {path} response example {key!r}: {errors[0].message}"
            checked += 1
        body = operation.get("requestBody", {})
        for media, content in body.get("content", {}).items():
            for key, example in content.get("examples", {}).items():
                status = responses.get(key, (None,))[0]
                if media.startswith("application/json") and status is not None and status < 300:
                    errors = list(schema_validator(document, content["schema"]).iter_errors(example["value"]))
                    assert not errors, f"{method.upper()} {path} request example {key!r}: {errors[0].message}"
                    checked += 1
    assert checked > 30


def test_replay_marks_are_complete(document):
    """Each marked request names its path values and an expected answer (Tests/e2e/test_openapi.py)."""
    replays = 0
    for path, method, operation in operations(document):
        params = set(re.findall(r"\{(\w+)\}", path))
        responses = response_examples(document, operation)
        marks = []
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            for key, example in content.get("examples", {}).items():
                assert "x-replay" in example, f"{method.upper()} {path} request example {key!r} has no x-replay"
                assert key in responses, f"{method.upper()} {path}: no response example {key!r} for the request"
                marks.append(example["x-replay"])
        for mark in operation.get("x-replay", []):
            assert set(mark) <= {"example", "status", "path", "method", "headers", "body"}, mark
            assert ("example" in mark) != ("status" in mark), mark
            if "example" in mark:
                assert mark["example"] in responses, f"{method.upper()} {path}: no response example {mark['example']!r}"
            else:
                assert str(mark["status"]) in operation["responses"]
            marks.append(mark.get("path", {}))
        for values in marks:
            assert set(values) == params, f"{method.upper()} {path}: x-replay path values {values} for {params}"
            assert all(isinstance(v, str) for v in values.values()), values
        replays += len(marks)
    assert replays > 40


# Readiness probes answer 503 with their own document (SPEC §5 /readyz: the model lists).
READINESS_503 = {"/readyz": "Readiness", "/v2/health/ready": "Ready"}


def test_every_documented_error_is_json(document):
    errors = 0
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                errors += 1
                content = resolve(document, response)["content"]
                assert list(content) == ["application/json"], f"{method.upper()} {path} {status}"
                schema = content["application/json"]["schema"]
                name = READINESS_503.get(path, "Error") if status == "503" else "Error"
                assert schema == {"$ref": f"#/components/schemas/{name}"}, f"{method.upper()} {path} {status}"
    assert errors > 40, f"only {errors} error responses documented: the check above saw almost nothing"


def test_nginx_serves_the_json_copy():
    rendered = render_nginx(POD_NGINX_ENV)
    block = re.search(r"location = /openapi\.json \{(.*?)\n        \}", rendered, re.S)
    assert block, "no `location = /openapi.json` in the rendered nginx.conf"
    assert f"alias {POD_NGINX_ENV['DOCS_DIR']}/openapi.json;" in block.group(1)
    dockerfile = (ROOT / "docker/Dockerfile").read_text()
    app = re.search(r"APP_DIR=(\S+)", dockerfile).group(1)
    assert POD_NGINX_ENV["DOCS_DIR"] == f"{app}/docs"
    assert re.search(r"^COPY docs/openapi\.json docs/$", dockerfile, re.M), "the image must hold docs/openapi.json"
