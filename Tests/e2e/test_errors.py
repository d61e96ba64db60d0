"""Every error class of SPEC §5 through nginx: JSON {"error": ...} with the right status, and the
server unharmed afterwards (a correct prediction right after each error)."""

import json

import pytest

from conftest import MAX_BATCH, MAX_BODY_BYTES, MAX_LINE_BYTES, assert_json_error

GOOD = " |a x0:0.5 x1:-0.25 |b y0:0.1 |c color=red w:0.3"
GOOD_ADF = ["shared |U u1 s:0.5", "|A a0 q:0.1", "|A a1 q:-0.2"]


def batch_with(bad, index=3, size=6):
    """A batch of good examples with `bad` at `index`: the error must name that index."""
    instances = [GOOD] * size
    instances[index] = bad
    return instances


# ------------------------------------------------------------------ 400: the body
@pytest.mark.parametrize("body", [
    b'{"instances": [',
    b'{"instances": [" |a x:1"],}',
    b"not json at all",
    b'{"instances": " |a x:1"}',
    b'{"instances": [1, 2]}',
    b'{"no_instances": []}',
    b'[" |a x:1"]',
    b"",
], ids=["truncated", "trailing_comma", "not_json", "instances_not_list", "numbers", "no_instances_key",
        "top_level_array", "empty_body"])
def test_malformed_json_is_400(stack, unharmed, body):
    r = stack.post("/v1/models/logistic:predict", data=body, headers={"Content-Type": "application/json"})
    assert_json_error(r, 400)
    unharmed()


def test_json_nested_deeper_than_32_is_400(stack, unharmed):
    depth = 40
    body = '{"instances": [' + "[" * depth + '" |a x:1"' + "]" * depth + "]}"
    r = stack.post("/v1/models/logistic:predict", data=body.encode(), headers={"Content-Type": "application/json"})
    assert_json_error(r, 400)
    unharmed()


def test_invalid_utf8_json_is_400(stack, unharmed):
    body = b'{"instances": [" |a x\xff:1"]}'
    r = stack.post("/v1/models/logistic:predict", data=body, headers={"Content-Type": "application/json"})
    assert_json_error(r, 400)
    unharmed()


# ------------------------------------------------------------------ 400: one bad example in a batch
BAD_EXAMPLES = {
    "empty": "",
    "whitespace_only": "   \t ",
    "nul": " |a x:1\x00 y:2",
    "control_char_0x01": " |a x:1 \x01y:2",
    "control_char_0x1f": " |a x:1\x1f",
    "escape_char": " |a \x1b[31mx:1",
    "no_bar": "x:1 y:2",
    "newline_inside": " |a x:1\n |a y:2",
    "carriage_return_newline": " |a x:1\r\n |a y:2",
    "save_tag": "save|a x:1",
    "save_tag_quoted": "'save_model |a x:1",
    "save_tag_with_label": "1 save_it|a x:1",
    "line_over_limit": " |a " + " ".join(f"f{i}:1" for i in range(MAX_LINE_BYTES // 4)),
}


@pytest.mark.parametrize("name", list(BAD_EXAMPLES))
def test_rejected_example_is_400_naming_its_index(stack, unharmed, name):
    r = stack.predict("logistic", batch_with(BAD_EXAMPLES[name], index=3))
    assert_json_error(r, 400, contains="instance 3")
    unharmed()


def test_first_instance_error_names_index_0(stack, unharmed):
    r = stack.predict("logistic", batch_with("", index=0))
    assert_json_error(r, 400, contains="instance 0")
    unharmed()


@pytest.mark.parametrize("instance", [
    {"features": {"a b": {"x": 1}}},
    {"features": {"a|b": {"x": 1}}},
    {"features": {"a:b": {"x": 1}}},
    {"features": {"a": {"x y": 1}}},
    {"features": {"a": {"x|y": 1}}},
    {"features": {"a": {"x:y": 1}}},
    {"features": {"a": {"g": "red car"}}},
    {"features": {"a": {"g": "red|car"}}},
    {"features": {"a": {"g": "red:car"}}},
    {"features": {"a": {"g": "red\ncar"}}},
    {"features": {"a": {"x": 1}}, "tag": "t 1"},
    {"features": {"a": {"x": 1}}, "tag": "t|1"},
    {"features": {"a": {"x": 1}}, "tag": "save_me"},
    {"features": {"a": {"x": [1, 2]}}},
    {"features": {"a": {"x": {"y": 1}}}},
    {"features": "|a x:1"},
    {"nothing": 1},
], ids=["ns_space", "ns_bar", "ns_colon", "feature_space", "feature_bar", "feature_colon", "value_space",
        "value_bar", "value_colon", "value_newline", "tag_space", "tag_bar", "tag_save",
        "value_list", "value_object", "features_string", "no_features"])
def test_unsafe_structured_instance_is_400(stack, unharmed, instance):
    instances = [{"features": {"a": {"x0": 0.5}}}] * 5
    instances[2] = instance
    r = stack.predict("logistic", instances)
    assert_json_error(r, 400, contains="instance 2")
    unharmed()


def test_text_plain_blank_line_in_single_line_body_is_400(stack, unharmed):
    body = GOOD + "\n\n" + GOOD + "\n"
    r = stack.post("/v1/models/logistic:predict", data=body.encode(), headers={"Content-Type": "text/plain"})
    assert_json_error(r, 400)
    unharmed()


def test_text_plain_non_utf8_is_rejected(stack, unharmed):
    r = stack.post("/v1/models/logistic:predict", data=b" |a x\xff:1\n", headers={"Content-Type": "text/plain"})
    assert r.status_code in (400, 415), r.text
    assert_json_error(r, r.status_code)
    unharmed()


@pytest.mark.parametrize("bad", [
    "shared |U u1\n\n|A a0",
    "",
    ["shared |U u1", "", "|A a0"],
    ["shared |U u1", "|A a0\n|A a1"],
    ["shared |U u1", "|A a0\x00"],
    [],
], ids=["blank_line_in_string", "empty_string", "empty_line_in_array", "newline_in_array_line", "nul",
        "empty_array"])
def test_rejected_multiline_example_is_400(stack, unharmed, bad):
    instances = [GOOD_ADF] * 4
    instances[1] = bad
    r = stack.predict("cb", instances)
    assert_json_error(r, 400, contains="instance 1")
    r = stack.predict("cb", [GOOD_ADF])
    assert r.status_code == 200, r.text
    unharmed()


# ------------------------------------------------------------------ 404, 405
@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/models/nope:predict"),
    ("GET", "/v1/models/nope"),
])
def test_unknown_model_is_404(stack, unharmed, method, path):
    r = stack.request(method, path, json={"instances": [GOOD]})
    assert_json_error(r, 404)
    unharmed()


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/models/logistic:explain", "/v1/", "/nothing",
                                  "/index.html", "/healthz/extra", "/v2/models", "/v2/models/logistic/explain"])
def test_unknown_path_is_404_json(stack, unharmed, path):
    """Paths under /v1/ are answered by vwfcgi, the others by nginx: both in JSON."""
    r = stack.get(path)
    assert_json_error(r, 404)
    unharmed()


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/models/logistic:predict"),
    ("PUT", "/v1/models/logistic:predict"),
    ("DELETE", "/v1/models"),
    ("POST", "/v1/models"),
    ("DELETE", "/v1/models/logistic"),
    ("POST", "/healthz"),
])
def test_wrong_method_is_405(stack, unharmed, method, path):
    r = stack.request(method, path)
    assert_json_error(r, 405)
    unharmed()


# ------------------------------------------------------------------ 413, 415
def test_body_over_nginx_limit_is_413(stack, unharmed):
    body = b'{"instances": ["' + b" |a x:1" * (2 * 1024 * 1024 // 7) + b'"]}'
    r = stack.post("/v1/models/logistic:predict", data=body, headers={"Content-Type": "application/json"})
    assert_json_error(r, 413)
    unharmed()


def test_body_over_vwfcgi_limit_is_413(stack, unharmed):
    """Under nginx's client_max_body_size but over vwfcgi's --max-body-bytes."""
    body = json.dumps({"instances": [GOOD]}) + " " * (MAX_BODY_BYTES + 1000)
    r = stack.post("/v1/models/logistic:predict", data=body.encode(), headers={"Content-Type": "application/json"})
    assert_json_error(r, 413)
    unharmed()


def test_more_instances_than_max_batch_is_413(stack, unharmed):
    r = stack.predict("logistic", [GOOD] * (MAX_BATCH + 1))
    assert_json_error(r, 413)
    r = stack.predict("logistic", [GOOD] * MAX_BATCH)
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["predictions"]) == MAX_BATCH
    unharmed()


@pytest.mark.parametrize("ctype", ["application/xml", "text/html", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "text/plain; charset=latin1"])
def test_unsupported_content_type_is_415(stack, unharmed, ctype):
    r = stack.post("/v1/models/logistic:predict", data=json.dumps({"instances": [GOOD]}).encode(),
                   headers={"Content-Type": ctype})
    assert_json_error(r, 415)
    unharmed()
