"""Predictions through nginx -> vwfcgi -> vw equal VW's own (SPEC §5), for three kinds of model."""

import json
import random
import re

import pytest

from conftest import (
    assert_cb_prediction,
    assert_scalar_predictions,
    cb_example,
    cb_lines,
    features_to_text,
    logistic_features,
    model_version,
    oaa_features,
)

HEX12 = re.compile(r"^[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def logistic_examples(reference):
    """200 random examples: (structured features, tag or None, VW line, VW's prediction)."""
    rng = random.Random(2024)
    out = []
    for i in range(200):
        feats = logistic_features(rng)
        tag = f"t{i}" if i % 3 == 0 else None
        line = (tag or "") + features_to_text(feats)
        out.append((feats, tag, line, reference.predict("logistic", line)))
    return out


def check_envelope(r, model, model_dir):
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["model"] == model
    assert HEX12.match(body["version"]), body["version"]
    assert r.headers.get("X-Model-Version") == body["version"]
    assert body["version"] == model_version(model_dir, model)
    return body


def test_logistic_json_strings_equal_vw(stack, model_dir, logistic_examples):
    r = stack.predict("logistic", [line for _, _, line, _ in logistic_examples])
    body = check_envelope(r, "logistic", model_dir)
    assert_scalar_predictions(body["predictions"], [want for *_, want in logistic_examples])


def test_logistic_structured_objects_equal_vw(stack, model_dir, logistic_examples):
    instances = []
    for feats, tag, _, _ in logistic_examples:
        inst = {"features": feats}
        if tag:
            inst["tag"] = tag
        instances.append(inst)
    r = stack.predict("logistic", instances)
    body = check_envelope(r, "logistic", model_dir)
    assert_scalar_predictions(body["predictions"], [want for *_, want in logistic_examples])


def test_logistic_text_plain_is_exactly_what_vw_printed(stack, reference, model_dir, logistic_examples):
    text = "".join(line + "\n" for _, _, line, _ in logistic_examples)
    want = reference.printed("logistic", text)
    assert want.count("\n") == len(logistic_examples) and " t0\n" in want  # the oracle prints tags
    r = stack.post("/v1/models/logistic:predict", data=text.encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.headers.get("X-Model-Version") == model_version(model_dir, "logistic")
    assert r.text == want


def test_text_plain_with_charset_and_without_trailing_newline(stack, reference, logistic_examples):
    lines = [line for _, _, line, _ in logistic_examples[:10]]
    want = reference.printed("logistic", "\n".join(lines) + "\n")
    r = stack.post("/v1/models/logistic:predict", data="\n".join(lines).encode(),
                   headers={"Content-Type": "text/plain; charset=utf-8"})
    assert r.status_code == 200, r.text[:500]
    assert r.text == want


def test_structured_label_with_initial_value_answers_as_vw(stack, reference, logistic_examples):
    """A structured instance's "label" is VW's label section: the initial value 0.5 (VW's `houses`
    test: `0 1 0.5 'third_house | ...`) moves the prediction, as in the text form (issue 20)."""
    feats = logistic_examples[0][0]
    labels = ["0 1 0.5", "1 2 -1.25", "+1", -1]
    text = "".join(f"{label} 'h{i}" + features_to_text(feats) + "\n" for i, label in enumerate(labels))
    want = [float(line.split()[0]) for line in reference.printed("logistic", text).splitlines()]
    unlabelled = reference.predict("logistic", features_to_text(feats))
    assert abs(want[0] - unlabelled) > 1e-3, "the initial value does not move the oracle's answer"
    r = stack.predict("logistic", [{"label": label, "features": feats, "tag": f"h{i}"} for i, label in enumerate(labels)])
    assert r.status_code == 200, r.text[:500]
    assert_scalar_predictions(r.json()["predictions"], want)


# VW's affix_test.dat (`+1 | happier`) and numbers only VW's strtof fallback reads (`+`, `1E+2`, hex),
# or its fast path reads its own way (`.` and `e5` are 0, `1e` is 1): the initial value `+.5` moves
# the prediction.
SIGNED_NUMBERS = ["+1 | happier", "+1 +2 +.5 't1 |a x:+.5e1 y:5. |b:+2 z:1E+2", "-1 |a w:0x10 v:+red", ". 1e |a x:e5 y:-"]


def test_numbers_vw_reads_answer_as_vw(stack, reference):
    want = reference.printed("logistic", "".join(line + "\n" for line in SIGNED_NUMBERS))
    r = stack.post("/v1/models/logistic:predict", data="\n".join(SIGNED_NUMBERS).encode(),
                   headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text[:500]
    assert r.text == want
    r = stack.predict("logistic", SIGNED_NUMBERS)
    assert r.status_code == 200, r.text[:500]
    assert_scalar_predictions(r.json()["predictions"], [float(line.split()[0]) for line in want.splitlines()])


@pytest.mark.parametrize("line, reason", [
    ("inf |a x", "label word is not a finite number"),
    ("|a x:nan", "not a finite number"),
    ("1x |a x", "label word is not a number"),
    ("|a x:1e200", "exponent out of VW's range"),
])
def test_numbers_vw_misreads_are_refused_with_the_reason(stack, line, reason):
    r = stack.predict("logistic", ["|a x", line])
    assert r.status_code == 400, r.text[:500]
    assert "instance 1" in r.json()["error"] and reason in r.json()["error"], r.json()


def test_missing_content_type_is_read_as_json(stack, logistic_examples):
    lines = [line for _, _, line, _ in logistic_examples[:5]]
    # requests sends no Content-Type for a bytes body.
    r = stack.post("/v1/models/logistic:predict", data=json.dumps({"instances": lines}).encode())
    assert "Content-Type" not in r.request.headers
    assert r.status_code == 200, r.text[:500]
    assert_scalar_predictions(r.json()["predictions"], [w for *_, w in logistic_examples[:5]])


def test_json_with_charset_parameter(stack, logistic_examples):
    lines = [line for _, _, line, _ in logistic_examples[:5]]
    r = stack.post("/v1/models/logistic:predict", data=json.dumps({"instances": lines}).encode(),
                   headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text[:500]
    assert_scalar_predictions(r.json()["predictions"], [w for *_, w in logistic_examples[:5]])


def test_empty_instances_answers_empty_predictions(stack):
    r = stack.predict("logistic", [])
    assert r.status_code == 200, r.text[:500]
    assert r.json()["predictions"] == []


def test_oaa_predictions_are_vws_integers(stack, reference, model_dir):
    rng = random.Random(7)
    feats = [oaa_features(rng) for _ in range(150)]
    lines = [features_to_text(f) for f in feats]
    want = [reference.predict("oaa", line) for line in lines]
    assert len(set(want)) > 1, "test data should exercise more than one class"

    body = check_envelope(stack.predict("oaa", lines), "oaa", model_dir)
    assert all(type(p) is int for p in body["predictions"]), body["predictions"][:10]
    assert body["predictions"] == want

    body = check_envelope(stack.predict("oaa", [{"features": f} for f in feats]), "oaa", model_dir)
    assert body["predictions"] == want

    r = stack.post("/v1/models/oaa:predict", data="".join(l + "\n" for l in lines).encode(),
                   headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text[:500]
    assert r.text == reference.printed("oaa", "".join(l + "\n" for l in lines))


@pytest.fixture(scope="module")
def cb_examples(reference):
    rng = random.Random(31)
    out = []
    for i in range(60):
        ex = cb_example(rng, actions=2 + i % 4)  # 2..5 actions
        lines = cb_lines(ex)
        out.append((ex, lines, reference.predict("cb", lines)))
    return out


@pytest.mark.parametrize("form", ["joined_string", "array_of_lines", "structured"])
def test_cb_explore_adf_action_probabilities_equal_vw(stack, model_dir, cb_examples, form):
    if form == "joined_string":
        instances = ["\n".join(lines) for _, lines, _ in cb_examples]
    elif form == "array_of_lines":
        instances = [lines for _, lines, _ in cb_examples]
    else:
        instances = [ex for ex, _, _ in cb_examples]
    body = check_envelope(stack.predict("cb", instances), "cb", model_dir)
    assert len(body["predictions"]) == len(cb_examples)
    for i, (got, (_, _, want)) in enumerate(zip(body["predictions"], cb_examples)):
        try:
            assert_cb_prediction(got, want)
        except AssertionError as error:
            raise AssertionError(f"instance {i}: {error}") from None


def test_cb_explore_adf_text_plain_is_exactly_what_vw_printed(stack, reference, cb_examples):
    text = "".join("\n".join(lines) + "\n\n" for _, lines, _ in cb_examples)
    want = reference.printed("cb", text)
    assert want.count("\n\n") == len(cb_examples)  # VW prints a blank line after each example
    r = stack.post("/v1/models/cb:predict", data=text.encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == want


def test_models_answer_interleaved_on_one_stack(stack, reference, logistic_examples, cb_examples):
    """Three models served at once: alternate requests between them."""
    rng = random.Random(5)
    for i in range(30):
        which = i % 3
        if which == 0:
            chunk = logistic_examples[i:i + 3]
            r = stack.predict("logistic", [line for _, _, line, _ in chunk])
            assert r.status_code == 200, r.text
            assert_scalar_predictions(r.json()["predictions"], [w for *_, w in chunk])
        elif which == 1:
            line = features_to_text(oaa_features(rng))
            r = stack.predict("oaa", [line])
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == [reference.predict("oaa", line)]
        else:
            _, lines, want = cb_examples[i]
            r = stack.predict("cb", [lines])
            assert r.status_code == 200, r.text
            assert_cb_prediction(r.json()["predictions"][0], want)
