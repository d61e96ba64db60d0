"""Hot reload by file drop (SPEC §4): validated, zero-downtime, versioned.

Models are replaced the way users and Kubernetes do it (write-then-rename, a `..data` symlink
swap); every prediction is checked against VW's answer for the version the reply names.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
import vowpalwabbit

from conftest import train_small_logistic, wait_until, Stack, assert_json_error, close

# A liveness bound for "the new version is served", not a performance assertion: the
# measured times are printed (pytest -s) and reported by the reload benchmark.
SWITCH_BOUND = 10.0
EXAMPLES = [f" |a x:{x / 10:.1f} |b y:{(9 - x) / 10:.1f}" for x in range(10)]




def version_of(*parts: bytes) -> str:
    return hashlib.sha256(b"".join(parts)).hexdigest()[:12]


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """Four differently trained models: version -> (bytes, VW's predictions on EXAMPLES)."""
    base = tmp_path_factory.mktemp("variants")
    out = {}
    for seed in range(4):
        path = base / f"v{seed}.vw"
        train_small_logistic(path, seed + 1)
        ws = vowpalwabbit.Workspace(f"-i {path} -t --quiet")
        want = [ws.predict(line) for line in EXAMPLES]
        ws.finish()
        data = path.read_bytes()
        out[version_of(data)] = (data, want)
    assert len(out) == 4
    return out


def drop(model_dir: Path, name: str, data: bytes) -> float:
    """Write-then-rename; returns the time of the rename."""
    tmp = model_dir / f"{name}.vw.tmp"
    tmp.write_bytes(data)
    renamed = time.monotonic()
    os.rename(tmp, model_dir / f"{name}.vw")
    return renamed


def wait_for(predicate, bound: float = SWITCH_BOUND, step: float = 0.01):
    return wait_until(predicate, bound, step)


def serving_version(stack: Stack, name: str) -> str | None:
    r = stack.get(f"/v1/models/{name}")
    return r.json().get("version") if r.status_code == 200 else None


def check_reply(r, variants) -> str:
    """A 200 whose predictions are VW's for the version it names; returns that version."""
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]!r}"
    body = r.json()
    assert r.headers["X-Model-Version"] == body["version"]
    _, want = variants[body["version"]]
    got = body["predictions"]
    assert len(got) == len(want) and all(close(g, w) for g, w in zip(got, want)), (body["version"], got, want)
    return body["version"]


@pytest.fixture
def reload_stack(tmp_path, variants):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    first = next(iter(variants.values()))[0]
    drop(model_dir, "m", first)
    s = Stack(model_dir, shards=1).start()
    yield s, model_dir
    problems = s.stop()
    assert not problems, "\n".join(problems)


def test_replacing_under_load_never_fails_a_request(reload_stack, variants):
    stack, model_dir = reload_stack
    stop = threading.Event()
    failures: list[str] = []
    replies = [0]
    lock = threading.Lock()

    def client():
        import requests
        session = requests.Session()
        url = stack.url("/v1/models/m:predict")
        while not stop.is_set():
            try:
                r = session.post(url, json={"instances": EXAMPLES}, timeout=30)
                check_reply(r, variants)
                with lock:
                    replies[0] += 1
            except Exception as error:  # noqa: BLE001 - every failure is reported
                with lock:
                    failures.append(repr(error)[:300])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    switch_times = []
    try:
        versions = list(variants)
        for i in range(20):
            target = versions[(i + 1) % len(versions)]
            renamed = drop(model_dir, "m", variants[target][0])
            seen = wait_for(lambda: serving_version(stack, "m") == target)
            assert seen, f"version {target} not served within {SWITCH_BOUND}s of the rename"
            switch_times.append(time.monotonic() - renamed)
            # Replies now come from the new version.
            assert check_reply(stack.predict("m", EXAMPLES), variants) == target
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not failures, f"{len(failures)} failed requests during reloads, first: {failures[:3]}"
    assert replies[0] > 0
    print(f"\nrename -> serving over {len(switch_times)} reloads under load: median {statistics.median(switch_times) * 1000:.0f} ms, "
          f"max {max(switch_times) * 1000:.0f} ms, {replies[0]} replies")


def test_bad_files_never_replace_the_serving_version(reload_stack, variants):
    stack, model_dir = reload_stack
    good = serving_version(stack, "m")
    good_bytes = variants[good][0]
    cases = {
        "corrupt": lambda: drop(model_dir, "m", os.urandom(len(good_bytes))),
        "truncated inside the header": lambda: drop(model_dir, "m", good_bytes[:40]),
        "bad json": lambda: (model_dir / "m.json").write_text('{"shards": "many"}'),
        "forbidden vw args": lambda: (model_dir / "m.json").write_text('{"vw_args": ["--daemon"]}'),
        "sha256 mismatch": lambda: (model_dir / "m.sha256").write_text("0" * 64 + "  m.vw\n"),
    }
    for what, make_bad in cases.items():
        before = stack.get("/v1/models/m").json()["last_error"]
        make_bad()
        status = wait_for(lambda: (lambda s: s if s["last_error"] and s["last_error"] != before else None)(
            stack.get("/v1/models/m").json()))
        assert status, f"{what}: last_error not set"
        assert status["ready"] and status["version"] == good, f"{what}: serving changed: {status}"
        assert status["last_error"]["reason"] and status["last_error"]["time"].endswith("Z")
        for _ in range(5):
            assert check_reply(stack.predict("m", EXAMPLES), variants) == good, what
        # Restore the good state for the next case.
        for side in ("m.json", "m.sha256"):
            (model_dir / side).unlink(missing_ok=True)
        drop(model_dir, "m", good_bytes)
        assert wait_for(lambda: stack.get("/v1/models/m").json()["last_error"] is None), f"{what}: not cleared"


def test_a_sha256_file_that_matches_allows_the_load(reload_stack, variants):
    stack, model_dir = reload_stack
    target = list(variants)[2]
    data = variants[target][0]
    (model_dir / "m.sha256").write_text(hashlib.sha256(data).hexdigest() + "  m.vw\n")
    drop(model_dir, "m", data)
    assert wait_for(lambda: serving_version(stack, "m") == target)
    assert check_reply(stack.predict("m", EXAMPLES), variants) == target


def test_json_changes_the_version(reload_stack, variants):
    stack, model_dir = reload_stack
    before = serving_version(stack, "m")
    config = b'{"max_batch": 5}'
    (model_dir / "m.json.tmp").write_bytes(config)
    os.rename(model_dir / "m.json.tmp", model_dir / "m.json")
    expected = version_of(variants[before][0], config)
    assert wait_for(lambda: serving_version(stack, "m") == expected)
    assert_json_error(stack.predict("m", EXAMPLES), 413)
    assert stack.predict("m", EXAMPLES[:5]).status_code == 200


def test_delete_unloads_and_a_new_file_serves(reload_stack, variants):
    stack, model_dir = reload_stack
    data = list(variants.values())[1][0]
    drop(model_dir, "fresh", data)
    assert wait_for(lambda: stack.predict("fresh", EXAMPLES).status_code == 200), "new model not served"
    assert stack.get("/readyz").status_code == 200
    (model_dir / "fresh.vw").unlink()
    assert wait_for(lambda: stack.predict("fresh", EXAMPLES).status_code == 404), "deleted model still served"
    assert_json_error(stack.get("/v1/models/fresh"), 404)
    assert stack.get("/readyz").status_code == 200, "a removed model must not make the server unready"
    names = [m["name"] for m in stack.get("/v1/models").json()["models"]]
    assert names == ["m"]


def test_ignored_files_are_not_models(reload_stack, variants):
    stack, model_dir = reload_stack
    data = list(variants.values())[1][0]
    for name in [".hidden.vw", "x.vw.tmp", "x.vw.part", "x.vw.writing", "x.vw~", "bad name.vw", "-x.vw"]:
        (model_dir / name).write_bytes(data)
    time.sleep(2.5)  # two rescans
    names = [m["name"] for m in stack.get("/v1/models").json()["models"]]
    assert names == ["m"]


def test_a_burst_of_renames_ends_on_the_last_file(reload_stack, variants):
    stack, model_dir = reload_stack
    versions = list(variants)
    # Nineteen renames cycling through three versions, then one with a version not used before.
    for i in range(19):
        drop(model_dir, "m", variants[versions[i % 3]][0])
        time.sleep(0.04)
    last = versions[3]
    drop(model_dir, "m", variants[last][0])
    assert wait_for(lambda: serving_version(stack, "m") == last)
    time.sleep(1.5)  # nothing later moves it
    assert serving_version(stack, "m") == last
    assert check_reply(stack.predict("m", EXAMPLES), variants) == last


def test_kubernetes_symlink_swap_is_picked_up(tmp_path, variants):
    """A configMap/secret-style volume: files are symlinks through `..data`, swapped by rename."""
    model_dir = tmp_path / "volume"
    model_dir.mkdir()
    versions = list(variants)

    def publish(stamp: str, version: str):
        target = model_dir / f"..{stamp}"
        target.mkdir()
        (target / "m.vw").write_bytes(variants[version][0])
        tmp_link = model_dir / "..data_tmp"
        tmp_link.symlink_to(target.name)
        os.rename(tmp_link, model_dir / "..data")

    publish("2026_11_26_10_00_00.1", versions[0])
    (model_dir / "m.vw").symlink_to("..data/m.vw")
    stack = Stack(model_dir, shards=1).start()
    try:
        assert serving_version(stack, "m") == versions[0]
        publish("2026_11_26_10_05_00.2", versions[3])
        assert wait_for(lambda: serving_version(stack, "m") == versions[3]), "symlink swap not picked up"
        assert check_reply(stack.predict("m", EXAMPLES), variants) == versions[3]
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_models_that_fail_at_start_are_listed_not_ready(tmp_path, variants):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    drop(model_dir, "good", list(variants.values())[0][0])
    (model_dir / "broken.vw").write_bytes(b"\x07\x00\x00\x00garbage" * 10)
    # SPEC §5: one model serves, so the pod is ready; the broken one shows in not_ready.
    stack = Stack(model_dir, shards=1).start()
    try:
        ready = stack.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "broken" in ready.json()["not_ready"] and "good" in ready.json()["ready"]
        models = {m["name"]: m for m in stack.get("/v1/models").json()["models"]}
        assert models["good"]["ready"] and not models["broken"]["ready"]
        assert models["broken"]["last_error"]["reason"]
        assert stack.predict("good", EXAMPLES).status_code == 200
        assert_json_error(stack.predict("broken", EXAMPLES), 503)
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
