"""Structured JSON -> VW text -> what VW parses has exactly the features sent (issue 8).

Random valid structured instances (namespace and feature names from a wide alphabet: unicode,
quotes, backslashes, '=', 'save' prefixes; numbers, strings, true/false/null values; tags) go
through nginx and vwfcgi to real vw. The reference is the vowpalwabbit package scoring a line
built here independently from the same instance (SPEC §5: f:1.5, g=red, h; false/null left out).

The models have random weights in every slot (`--random_weights`), so a feature that is dropped,
added, renamed, revalued or moved to another namespace changes the prediction: equal predictions
mean VW parsed the same features. The ADF model scores with softmax exploration over quadratic
shared x action features, so every shared and action feature moves the probabilities.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import vowpalwabbit

from conftest import Stack, close, action_probabilities

ROUNDS = 100

SAFE_PIECES = ["a", "b", "Z", "x1", "_", "-", ".", "=", "'", '"', "\\", "/", "é", "ü", "中", "ß", "😀", "\u0301",
               "#", "[", "]", "^", "save", "0", "7", ",", "{", "}", "\u200b", "ñ", "Ω"]


def safe_text(rng: random.Random, *, allow_empty: bool = False) -> str:
    s = "save" if rng.random() < 0.1 else ""
    for _ in range(rng.randint(0 if allow_empty else 1, 5)):
        s += rng.choice(SAFE_PIECES)
    return s or "n"


def safe_tag(rng: random.Random) -> str:
    tag = safe_text(rng).replace("'", "q")
    while tag.startswith("save"):
        tag = tag[4:]
    return tag or "t"


def number(rng: random.Random) -> float | int:
    # Magnitudes well above VW's printed precision, so a lost feature always shows.
    value = rng.choice([-1, 1]) * rng.uniform(0.3, 3.0)
    return int(value * 10) if rng.random() < 0.2 else round(value, rng.randint(1, 6))


def namespaces(rng: random.Random, ns_prefix: str = "") -> dict:
    out = {}
    for _ in range(rng.randint(1, 3)):
        feats = {}
        for _ in range(rng.randint(1, 5)):
            kind = rng.random()
            if kind < 0.45:
                value = number(rng)
            elif kind < 0.75:
                value = safe_text(rng)
            elif kind < 0.9:
                value = True
            else:
                value = rng.choice([False, None])
            feats[safe_text(rng)] = value
        out[ns_prefix + (safe_text(rng, allow_empty=True) if rng.random() < 0.9 else "")] = feats
    return out


def feature_tokens(feats: dict) -> list[str]:
    tokens = []
    for name, value in feats.items():
        if value is None or value is False:
            continue
        if value is True:
            tokens.append(name)
        elif isinstance(value, str):
            tokens.append(f"{name}={value}")
        else:
            tokens.append(f"{name}:{json.dumps(value)}")  # the JSON number text, as sent
    return tokens


def vw_text(spaces: dict) -> str:
    """'|ns tok tok |ns2 ...' built independently of the server."""
    return " ".join("|" + ns + "".join(" " + t for t in feature_tokens(feats)) for ns, feats in spaces.items())


@pytest.fixture(scope="module")
def audit_models(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audit-models")
    ws = vowpalwabbit.Workspace(f"--random_weights --random_seed 5 -b 18 -l 1e-9 --quiet -f {path / 'rw.vw'}")
    ws.learn("1000 |a q")  # sets the label range, so predictions are not clipped to 0
    ws.learn("-1000 |a q")
    ws.finish()
    ws = vowpalwabbit.Workspace(f"--cb_explore_adf --softmax --lambda 0.01 -q :: --random_weights --random_seed 6 "
                                f"-b 18 -l 1e-9 --quiet -f {path / 'rwadf.vw'}")
    ws.learn(["shared |U a", "0:1:0.5 |A x", "|A y"])
    ws.finish()
    return path


@pytest.fixture(scope="module")
def audit_stack(audit_models):
    s = Stack(audit_models).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def test_structured_single_line_features_reach_vw_unchanged(audit_stack, audit_models):
    rng = random.Random(2024)
    ref = vowpalwabbit.Workspace(f"-i {audit_models / 'rw.vw'} -t --quiet")
    instances, lines = [], []
    for _ in range(ROUNDS):
        spaces = namespaces(rng)
        inst = {"features": spaces}
        tag = None
        if rng.random() < 0.4:
            tag = safe_tag(rng)
            inst["tag"] = tag
        instances.append(inst)
        lines.append((f"'{tag} " if tag else "") + vw_text(spaces))
    # Both ASCII-escaped and raw UTF-8 JSON.
    for ensure_ascii in (True, False):
        body = json.dumps({"instances": instances}, ensure_ascii=ensure_ascii).encode()
        r = audit_stack.post("/v1/models/rw:predict", data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text[:500]
        got = r.json()["predictions"]
        assert len(got) == len(lines)
        bad = [(i, lines[i], g, ref.predict(lines[i])) for i, g in enumerate(got) if not close(g, ref.predict(lines[i]))]
        assert not bad, f"{len(bad)} instances scored differently from the line built here; first: {bad[:3]}"
    # The check can fail: a changed feature value changes the prediction.
    changed = lines[0].replace(":", ":1", 1) if ":" in lines[0] else lines[0] + " extra"
    assert not close(ref.predict(changed), ref.predict(lines[0]))


def test_structured_adf_features_reach_vw_unchanged(audit_stack, audit_models):
    rng = random.Random(2025)
    ref = vowpalwabbit.Workspace(f"-i {audit_models / 'rwadf.vw'} -t --quiet")
    instances, examples = [], []
    for _ in range(ROUNDS):
        # Shared features reach the scores only through `-q ::`, which pairs ASCII namespaces:
        # shared namespace names start with a letter (the rest of the name is random).
        shared = namespaces(rng, ns_prefix=rng.choice("stuvw"))
        actions = [namespaces(rng) for _ in range(rng.randint(2, 4))]
        inst = {"shared": shared, "actions": actions}
        tag = None
        if rng.random() < 0.4:
            tag = safe_tag(rng)
            inst["tag"] = tag
        instances.append(inst)
        examples.append([f"shared {'%s ' % (chr(39) + tag) if tag else ''}" + vw_text(shared)]
                        + [vw_text(a) for a in actions])
    r = audit_stack.post("/v1/models/rwadf:predict", json={"instances": instances})
    assert r.status_code == 200, r.text[:500]
    got = r.json()["predictions"]
    assert len(got) == len(examples)
    for i, (pred, lines) in enumerate(zip(got, examples)):
        want = dict(enumerate(ref.predict(lines)))
        have = action_probabilities(pred)
        assert set(have) == set(want), (i, lines, pred)
        for action, p in want.items():
            assert close(have[action], p), f"instance {i}: {lines} -> {pred}, VW on the line built here: {want}"
    # The check can fail: probabilities are not saturated, and one more shared feature moves them.
    for lines in examples[:10]:
        probs = ref.predict(lines)
        assert 0.001 < min(probs) and max(probs) < 0.999, f"saturated probabilities {probs}: the check is blind"
        for changed in ([lines[0] + " extra"] + lines[1:], lines[:-1] + [lines[-1] + " extra"]):
            moved = ref.predict(changed)
            assert any(not close(a, b) for a, b in zip(moved, probs)), f"an added feature did not change {lines}"
