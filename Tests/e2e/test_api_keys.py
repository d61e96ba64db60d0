"""API keys (SPEC §8.9 "Keys"; issue 18 item 7): `--api-key-file` guards the learning loop's write
routes (`--api-key-scope writes`) or every route but the probes and metrics (`all`), through real
nginx, which passes the `Authorization` and `Ocp-Apim-Subscription-Key` headers as FastCGI params.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REFERENCE_VW, VW_COMMAND, VWFCGI_BIN, Stack, assert_json_error, wait_until
from test_loop import _train_log, context

KEY = "k3y-0ne-4f1d9c2a7b6e5d40"
SECOND_KEY = "second-key-8e7d"
# Blank lines, surrounding spaces and a CRLF line end are not part of any key.
KEY_FILE = f"\n  {KEY}  \r\n\n\t{SECOND_KEY}\n"

WRITE_ROUTES = [
    ("/v1/models/cb:rank", {"event_id": "k-1", "context": context("alice")}, 200),
    ("/v1/models/cb:reward", {"event_id": "k-1", "reward": 1.0}, 202),
    ("/v1/models/cb:activate", {"event_id": "k-1"}, 202),
    ("/v1/models/lin:learn", {"instances": ["1 |f a:1 b:0"]}, 202),
]
ROLLBACK = "/v1/models/cb/loop:rollback"


@pytest.fixture(scope="module")
def key_models(tmp_path_factory) -> Path:
    """`cb` (vw_json, --cb_explore_adf, a loop: :rank, :reward, :activate) and `lin` (VW text, a loop: :learn)."""
    work = tmp_path_factory.mktemp("keys-train")
    models = tmp_path_factory.mktemp("keys-models")
    _train_log(work / "log.dsjson", examples=300)
    subprocess.run([REFERENCE_VW, "--dsjson", "--cb_explore_adf", "--epsilon", "0.2", "-q", "UA", "-d",
                    str(work / "log.dsjson"), "-f", str(models / "cb.vw"), "--quiet"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    (models / "cb.json").write_text(json.dumps({"input": "vw_json", "loop": {"update_interval": "1h"}}) + "\n")
    (work / "lin.txt").write_text("".join(f"{i % 3} |f a:{i % 3} b:{i % 2}\n" for i in range(10)))
    subprocess.run([REFERENCE_VW, "-d", str(work / "lin.txt"), "-f", str(models / "lin.vw"), "--quiet"],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)
    (models / "lin.json").write_text(json.dumps({"loop": {"update_interval": "1h"}}) + "\n")
    return models


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text(KEY_FILE)
    path.chmod(0o600)
    return path


def _keyed_stack(models: Path, key_file: Path, scope: str, tmp_path_factory):
    s = Stack(models, state_dir=tmp_path_factory.mktemp("keys-state"),
              extra_args=("--api-key-file", str(key_file), "--api-key-scope", scope)).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def writes_stack(key_models, key_file, tmp_path_factory):
    yield from _keyed_stack(key_models, key_file, "writes", tmp_path_factory)


@pytest.fixture(scope="module")
def all_stack(key_models, key_file, tmp_path_factory):
    yield from _keyed_stack(key_models, key_file, "all", tmp_path_factory)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def subscription(key: str) -> dict:
    return {"Ocp-Apim-Subscription-Key": key}


def assert_401(r, what: str) -> None:
    assert_json_error(r, 401)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), f"{what}: {dict(r.headers)}"


def predict_ok(stack: Stack, headers: dict | None = None) -> None:
    r = stack.post("/v1/models/lin:predict", json={"instances": ["|f a:1 b:1"]}, headers=headers)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1, r.text


def requests_with_code(stack: Stack, route: str, code: int) -> float:
    total = 0.0
    for line in stack.get("/metrics").text.splitlines():
        if line.startswith("vwfcgi_requests_total{") and f'route="{route}"' in line and f'code="{code}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- scope writes
def test_without_a_key_every_write_route_is_401_and_counted_and_the_server_still_answers(writes_stack):
    for path, body, _ in WRITE_ROUTES:
        assert_401(writes_stack.post(path, json=body), path)
        predict_ok(writes_stack)
    # loop:rollback and loop:rotate are guarded by the same rule.
    for path in (ROLLBACK, "/v1/models/cb/loop:rotate"):
        assert_401(writes_stack.post(path, json={}), path)
    for route in ("rank", "reward", "activate", "learn"):
        assert requests_with_code(writes_stack, route, 401) >= 1, f"no 401 counted for {route}"
    # Nothing was logged: the decision never happened, so the loop counts no decision.
    assert writes_stack.get("/v1/models/cb/loop").json()["decisions"] == 0


def test_the_right_key_opens_the_write_routes_in_either_header(writes_stack):
    for headers in (bearer(KEY), subscription(KEY), {"Authorization": f"bearer   {KEY} "}):
        for path, body, status in WRITE_ROUTES:
            r = writes_stack.post(path, json=body, headers=headers)
            assert r.status_code == status, f"{path} with {list(headers)}: {r.status_code} {r.text[:300]}"


def test_wrong_keys_are_401_whatever_their_length(writes_stack):
    same_length = KEY[:-1] + ("0" if KEY[-1] != "0" else "1")
    wrong = [same_length, KEY[:-1], KEY + "x", "x", KEY.upper(), f"{KEY} {SECOND_KEY}"]
    for key in wrong:
        for headers in (bearer(key), subscription(key)):
            assert_401(writes_stack.post("/v1/models/cb:rank", json=WRITE_ROUTES[0][1], headers=headers), key)
    for headers in ({"Authorization": f"Basic {KEY}"}, {"Authorization": KEY}, {"Authorization": "Bearer "}):
        assert_401(writes_stack.post("/v1/models/cb:reward", json=WRITE_ROUTES[1][1], headers=headers), str(headers))
    predict_ok(writes_stack)


def test_every_key_of_the_file_opens_the_write_routes(writes_stack):
    for key in (KEY, SECOND_KEY):
        r = writes_stack.post("/v1/models/lin:learn", json={"instances": ["2 |f a:2"]}, headers=bearer(key))
        assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text


def test_scope_writes_leaves_predict_v2_and_reads_open(writes_stack):
    predict_ok(writes_stack)
    body = {"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|f a:1"]}]}
    assert writes_stack.post("/v2/models/lin/infer", json=body).status_code == 200
    for path in ("/v1/models", "/v1/models/cb", "/v1/models/cb/loop", "/v2/models/lin", "/healthz", "/readyz", "/metrics"):
        assert writes_stack.get(path).status_code == 200, path


def test_no_log_holds_a_key(writes_stack):
    """nginx's access and error logs and vwfcgi's log never show a presented key, right or wrong."""
    wrong = "wrong-key-that-must-not-be-logged"
    for headers in (bearer(KEY), subscription(SECOND_KEY), bearer(wrong)):
        writes_stack.post("/v1/models/cb:reward", json={"event_id": "k-log", "reward": 0.5}, headers=headers)
    access = writes_stack.prefix / "access.log"
    assert wait_until(lambda: access.exists() and ":reward" in access.read_text(), 5), "nginx logged no request"
    logs = [access, writes_stack.prefix / "error.log", writes_stack.nginx_log, writes_stack.vwfcgi_log]
    for path in logs:
        text = path.read_text(errors="replace") if path.exists() else ""
        for secret in (KEY, SECOND_KEY, wrong):
            assert secret not in text, f"{secret} in {path}"


# ---------------------------------------------------------------- scope all
def test_scope_all_guards_predict_v2_and_reads_but_not_probes_or_metrics(all_stack):
    body = {"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|f a:1"]}]}
    guarded = [
        ("POST", "/v1/models/lin:predict", {"instances": ["|f a:1 b:1"]}),
        ("POST", "/v2/models/lin/infer", body),
        ("POST", "/v1/models/cb:rank", WRITE_ROUTES[0][1]),
        ("GET", "/v2", None), ("GET", "/v2/health/live", None), ("GET", "/v2/health/ready", None),
        ("GET", "/v2/models/lin", None), ("GET", "/v2/models/lin/ready", None),
        ("GET", "/v1/models", None), ("GET", "/v1/models/lin", None), ("GET", "/v1/models/cb/loop", None),
    ]
    for method, path, payload in guarded:
        assert_401(all_stack.request(method, path, json=payload), path)
        r = all_stack.request(method, path, json=payload, headers=subscription(SECOND_KEY))
        assert r.status_code == 200, f"{path} with a key: {r.status_code} {r.text[:300]}"
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        assert all_stack.get(path).status_code == 200, path
    assert requests_with_code(all_stack, "predict", 401) >= 1
    assert requests_with_code(all_stack, "v2_infer", 401) >= 1
    predict_ok(all_stack, bearer(KEY))


# ---------------------------------------------------------------- start-up
def _serve(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VWFCGI_BIN), "serve", "--models", str(tmp_path), "--socket", str(tmp_path / "s.sock"),
         "--vw-command", VW_COMMAND, "--state-dir", str(tmp_path / "state"), "--instance-id", "keys", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env=dict(os.environ, VWFCGI_API_KEY_FILE=""))


@pytest.mark.parametrize("content, message", [(None, "cannot open"), ("\n  \n\t\n", "holds no key"),
                                              ("good-key\nbad key\n", "line 2")])
def test_an_unusable_key_file_stops_the_start_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    proc = _serve(tmp_path, "--api-key-file", str(path))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    assert "--api-key-file" in out and message in out and str(path) in out, out
    assert not (tmp_path / "s.sock").exists()


def _start_log(tmp_path: Path, *args: str) -> list[str]:
    """vwfcgi's log lines up to "models loaded" (then it is stopped)."""
    proc = _serve(tmp_path, *args)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "models loaded" in line:
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    return lines + rest.splitlines()


def test_without_a_key_file_the_start_says_once_that_the_write_routes_are_open(tmp_path):
    lines = _start_log(tmp_path)
    warnings = [line for line in lines if "write routes" in line and "open" in line]
    assert len(warnings) == 1, "".join(lines)
    assert "warning" in warnings[0].lower(), warnings[0]


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path):
    path = tmp_path / "keys"
    path.write_text(KEY + "\n")
    path.chmod(0o644)
    lines = _start_log(tmp_path, "--api-key-file", str(path))
    assert any("readable by every user" in line for line in lines), "".join(lines)
    assert not any("write routes" in line and "open" in line for line in lines), "".join(lines)
