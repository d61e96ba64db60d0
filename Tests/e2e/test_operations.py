"""Operations (issue 11, item 6): readiness, metrics hygiene, safe staging and loading, start-up checks.

Models are small logistic ones trained by conftest; waits are bounded liveness waits, not timings.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import VW_COMMAND, Stack, assert_json_error, train_small_logistic, wait_until

EXAMPLES = [" |a x:0.1 |b y:0.9", " |a x:0.7 |b y:0.2"]
CORRUPT = b"\x07\x00\x00\x00garbage" * 10


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("small") / "m.vw"
    train_small_logistic(path, 1)
    return path.read_bytes()


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("other") / "m.vw"
    train_small_logistic(path, 2)
    return path.read_bytes()


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def drop(model_dir: Path, name: str, data: bytes) -> None:
    tmp = model_dir / f"{name}.vw.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, model_dir / f"{name}.vw")


def serving(stack: Stack, name: str):
    status = stack.get(f"/v1/models/{name}").json()
    return status.get("version") if status.get("ready") else None


def gauge(text: str, name: str, model: str) -> float | None:
    m = re.search(r'^%s\{[^}]*model="%s"[^}]*\} (\S+)$' % (name, re.escape(model)), text, re.M)
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------- readiness (SPEC §5 /readyz)
def test_one_corrupt_model_does_not_make_the_pod_unready(tmp_path, small_model):
    (tmp_path / "good.vw").write_bytes(small_model)
    (tmp_path / "corrupt.vw").write_bytes(CORRUPT)
    stack = Stack(tmp_path).start()
    try:
        r = stack.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ready"] == ["good"] and body["not_ready"] == ["corrupt"], body
        metrics = stack.get("/metrics").text
        assert gauge(metrics, "vwfcgi_model_ready", "good") == 1
        assert gauge(metrics, "vwfcgi_model_ready", "corrupt") == 0
        # A corrupt file dropped later changes nothing either.
        (tmp_path / "late.vw").write_bytes(CORRUPT)
        assert wait_until(lambda: "late" in stack.get("/readyz").json()["not_ready"], 10)
        assert stack.get("/readyz").status_code == 200
        assert stack.predict("good", EXAMPLES).status_code == 200
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_readiness_all_is_strict(tmp_path, small_model):
    (tmp_path / "good.vw").write_bytes(small_model)
    (tmp_path / "corrupt.vw").write_bytes(CORRUPT)
    stack = Stack(tmp_path, extra_args=("--readiness", "all")).start(ready=False)
    try:
        assert wait_until(lambda: stack.get("/v1/models/good").json()["ready"], 30)
        r = stack.get("/readyz")
        assert_json_error(r, 503)
        assert r.headers.get("Retry-After")
        assert r.json()["not_ready"] == ["corrupt"] and r.json()["ready"] == ["good"]
        (tmp_path / "corrupt.vw").unlink()
        assert wait_until(lambda: stack.get("/readyz").status_code == 200, 10)
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_no_serving_model_is_unready(tmp_path):
    (tmp_path / "corrupt.vw").write_bytes(CORRUPT)
    stack = Stack(tmp_path).start(ready=False)
    try:
        assert wait_until(lambda: stack.get("/v1/models/corrupt").json()["last_error"], 30)
        r = stack.get("/readyz")
        assert_json_error(r, 503)
        assert r.json()["not_ready"] == ["corrupt"] and r.json()["ready"] == []
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- metrics hygiene
def check_exposition(text: str) -> None:
    """Every family has HELP and TYPE: `promtool check metrics` when installed, else a parse."""
    promtool = shutil.which("promtool")
    if promtool:
        import subprocess
        done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stdout + done.stderr
    from prometheus_client.parser import text_string_to_metric_families
    families = list(text_string_to_metric_families(text))
    assert families
    helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    types = set(re.findall(r"^# TYPE (\S+) \S", text, re.M))
    samples = {re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line).group(1)
               for line in text.splitlines() if line and not line.startswith("#")}
    for name in samples:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        family = family if family in types else name
        assert family in types, f"{name}: no # TYPE"
        assert family in helps, f"{name}: no # HELP"


def test_every_metric_has_help_and_removed_models_leave_metrics(tmp_path, small_model):
    for name in ("keep", "gone"):
        (tmp_path / f"{name}.vw").write_bytes(small_model)
    stack = Stack(tmp_path).start()
    try:
        for name in ("keep", "gone"):
            assert stack.predict(name, EXAMPLES).status_code == 200
            assert stack.post(f"/v1/models/{name}:predict", data=b"{", headers={"Content-Type": "application/json"}).status_code == 400
            assert stack.get(f"/v1/models/{name}").status_code == 200
        text = stack.get("/metrics").text
        check_exposition(text)
        assert 'model="gone"' in text and 'model="keep"' in text
        (tmp_path / "gone.vw").unlink()
        assert wait_until(lambda: stack.get("/v1/models/gone").status_code == 404, 10)
        text = stack.get("/metrics").text
        check_exposition(text)
        left = [line for line in text.splitlines() if 'model="gone"' in line]
        assert not left, f"series of a removed model still exported: {left[:5]}"
        assert 'model="keep"' in text
        # The model comes back: its series come back too (thread caches were dropped).
        (tmp_path / "gone.vw").write_bytes(small_model)
        assert wait_until(lambda: stack.get("/v1/models/gone").json().get("ready"), 30)
        for _ in range(8):
            assert stack.predict("gone", EXAMPLES).status_code == 200
        text = stack.get("/metrics").text
        assert re.search(r'^vwfcgi_examples_total\{model="gone"\} 16(\.0)?$', text, re.M), \
            [line for line in text.splitlines() if 'model="gone"' in line]
        assert gauge(text, "vwfcgi_model_ready", "gone") == 1
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- staging and loading
def test_a_b_a_within_50_ms_leaves_a_serving(tmp_path, small_model, other_model):
    a, b = small_model, other_model
    drop(tmp_path, "m", a)
    stack = Stack(tmp_path).start()
    try:
        def loads(result: str) -> float:
            pattern = r'^vwfcgi_model_loads_total\{[^}]*result="%s"[^}]*\} (\S+)$' % result
            return sum(float(v) for v in re.findall(pattern, stack.get("/metrics").text, re.M))

        for _ in range(3):
            ok, failed = loads("ok"), loads("failed")
            drop(tmp_path, "m", b)
            time.sleep(0.02)
            drop(tmp_path, "m", a)
            # B loads, then A loads again (unless both renames were seen in one batch: nothing loads).
            wait_until(lambda: loads("ok") + loads("failed") >= ok + failed + 2, 20)
            assert loads("failed") == failed, stack.get("/v1/models/m").json()
            assert serving(stack, "m") == version_of(a), stack.get("/v1/models/m").json()
            r = stack.predict("m", EXAMPLES)
            assert r.status_code == 200 and r.headers["X-Model-Version"] == version_of(a), r.text
            assert stack.get("/v1/models/m").json()["last_error"] is None
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


GIB = 1 << 30


def test_large_files_are_checked_before_they_are_read(tmp_path, small_model):
    models, outside = tmp_path / "models", tmp_path / "outside"
    models.mkdir()
    outside.mkdir()
    (models / "good.vw").write_bytes(small_model)
    # A symlink to a sparse 1 GiB file that is no VW model: refused after its first 64 KiB.
    sparse = outside / "sparse.bin"
    with open(sparse, "wb") as f:
        f.write(b"\x05\x00\x00\x00junk" * 100)
        f.truncate(GIB)
    (models / "sparse.vw").symlink_to(sparse)
    # A model header followed by 1 GiB of holes: over the default --max-model-bytes (1 GiB), refused before any read.
    huge = outside / "huge.bin"
    with open(huge, "wb") as f:
        f.write(small_model)
        f.truncate(GIB + 4096)
    (models / "huge.vw").symlink_to(huge)
    staging = tmp_path / "staging"
    staging.mkdir()
    stack = Stack(models, extra_args=("--staging-dir", str(staging))).start()
    try:
        errors = wait_until(lambda: all(stack.get(f"/v1/models/{n}").json()["last_error"] for n in ("sparse", "huge")), 30)
        assert errors
        sparse_error = stack.get("/v1/models/sparse").json()["last_error"]["reason"]
        huge_error = stack.get("/v1/models/huge").json()["last_error"]["reason"]
        assert "not a VW model file" in sparse_error, sparse_error
        assert "--max-model-bytes" in huge_error, huge_error
        hwm = vm_hwm_kib(stack.vwfcgi.pid)
        print(f"vwfcgi VmHWM after refusing two 1 GiB files: {hwm} KiB")
        assert hwm < 100 * 1024, f"vwfcgi peak RSS {hwm} KiB: a 1 GiB file was read into memory"
        assert stack.predict("good", EXAMPLES).status_code == 200
        # The staging directory holds only the serving copy (its own directory: a glob of /tmp may find none).
        staged = sorted(p.name for p in staging.rglob("*") if p.is_file())
        assert staged and all(name.startswith("good-") and name.endswith(".vw") for name in staged), staged
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_require_checksum(tmp_path, small_model):
    (tmp_path / "m.vw").write_bytes(small_model)
    stack = Stack(tmp_path, extra_args=("--require-checksum",)).start(ready=False)
    try:
        assert wait_until(lambda: stack.get("/v1/models/m").json()["last_error"], 30)
        reason = stack.get("/v1/models/m").json()["last_error"]["reason"]
        assert "m.sha256" in reason and "--require-checksum" in reason, reason
        assert_json_error(stack.get("/readyz"), 503)
        digest = hashlib.sha256(small_model).hexdigest()
        tmp = tmp_path / ".m.sha256"
        tmp.write_text(f"{digest}  m.vw\n")
        os.rename(tmp, tmp_path / "m.sha256")
        assert wait_until(lambda: serving(stack, "m") == version_of(small_model), 30)
        assert stack.get("/readyz").status_code == 200
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_a_file_written_in_place_with_a_stall_is_never_served_half_written(tmp_path, small_model, other_model):
    """A writer rewrites m.vw in place (no rename), stalling 600 ms mid-file: only the whole file is ever served."""
    drop(tmp_path, "m", small_model)
    stack = Stack(tmp_path).start()
    try:
        data = other_model
        half = len(data) // 2
        partial_versions = {version_of(data[:n]) for n in range(0, len(data), 4096)} | {version_of(data[:half])}
        seen: set[str] = set()
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                version = serving(stack, "m")
                if version:
                    seen.add(version)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for _ in range(2):
                with open(tmp_path / "m.vw", "r+b") as f:
                    f.truncate(0)
                    f.write(data[:half])
                    f.flush()
                    os.fsync(f.fileno())
                    time.sleep(0.6)
                    f.write(data[half:])
                assert wait_until(lambda: serving(stack, "m") == version_of(data), 20)
                data = small_model if data is other_model else other_model
                half = len(data) // 2
                partial_versions |= {version_of(data[:n]) for n in range(0, len(data), 4096)} | {version_of(data[:half])}
        finally:
            stop.set()
            watcher.join()
        assert not seen & partial_versions, f"a half-written file was served: {seen & partial_versions}"
        assert seen <= {version_of(small_model), version_of(other_model)}, seen
        log = stack.vwfcgi_log.read_text()
        assert log.count("model failed to load") == 0, log[-2000:]
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_a_model_whose_probe_hangs_does_not_block_other_loads(tmp_path, small_model, other_model, monkeypatch):
    monkeypatch.setenv("REAL_VW", VW_COMMAND)
    drop(tmp_path, "m", small_model)
    drop(tmp_path, "hang", small_model)
    wrapper = str(Path(__file__).with_name("hang_vw.sh"))
    stack = Stack(tmp_path, extra_args=("--vw-command", wrapper, "--load-timeout", "20")).start(ready=False)
    try:
        # m serves while hang's probe is still waiting (its load has 20 s).
        assert wait_until(lambda: serving(stack, "m") == version_of(small_model), 15)
        status = stack.get("/v1/models/hang").json()
        assert not status["ready"] and status["last_error"] is None, status
        assert_json_error(stack.get("/readyz"), 503)  # start-up models not all tried yet
        # A reload of m is not held back by hang either.
        drop(tmp_path, "m", other_model)
        assert wait_until(lambda: serving(stack, "m") == version_of(other_model), 15)
        assert stack.get("/v1/models/hang").json()["last_error"] is None
        # hang fails at its load timeout; then the server is ready (m serves).
        assert wait_until(lambda: stack.get("/v1/models/hang").json()["last_error"], 40)
        assert wait_until(lambda: stack.get("/readyz").status_code == 200, 10)
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- start-up checks
def test_a_second_server_on_a_live_socket_refuses_to_start(tmp_path, small_model):
    import subprocess
    from conftest import VWFCGI_BIN
    (tmp_path / "m.vw").write_bytes(small_model)
    stack = Stack(tmp_path).start()
    try:
        second = subprocess.run(
            [str(VWFCGI_BIN), "serve", "--models", str(tmp_path), "--socket", str(stack.socket_path),
             "--vw-command", VW_COMMAND],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert second.returncode != 0, second.stderr
        assert "another server is listening" in second.stderr, second.stderr
        assert stack.socket_path.is_socket()
        assert stack.predict("m", EXAMPLES).status_code == 200  # the first one is untouched
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_a_stale_socket_is_replaced(tmp_path, small_model):
    import socket as sockets
    (tmp_path / "m.vw").write_bytes(small_model)
    stack = Stack(tmp_path)
    stale = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    stale.bind(str(stack.socket_path))
    stale.close()  # the file stays, nobody listens
    stack.start()
    try:
        assert stack.predict("m", EXAMPLES).status_code == 200
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_version_flag():
    import subprocess
    from conftest import VWFCGI_BIN
    done = subprocess.run([str(VWFCGI_BIN), "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\s*", done.stdout), (done.stdout, done.stderr)


# ---------------------------------------------------------------- memory of a request
def tiny_objects_body(size: int) -> bytes:
    """`{"instances":[{},{},...]}` of just under `size` bytes: millions of tiny JSON values."""
    head, tail = b'{"instances":[', b"{}]}"
    count = (size - len(head) - len(tail)) // 3
    return head + b"{}," * count + tail


def test_a_large_body_of_tiny_objects_does_not_build_its_whole_tree(tmp_path, small_model):
    (tmp_path / "m.vw").write_bytes(small_model)
    stack = Stack(tmp_path).start()  # default limits: 8 MiB bodies (nginx and vwfcgi), 10,000 instances
    try:
        body = tiny_objects_body(8 * 1024 * 1024 - 1024)
        pid = stack.vwfcgi.pid
        before = vm_hwm_kib(pid)
        r = stack.post("/v1/models/m:predict", data=body, headers={"Content-Type": "application/json"}, timeout=60)
        assert_json_error(r, 413)
        one = vm_hwm_kib(pid)
        bodies = [threading.Thread(target=lambda: stack.post(
            "/v1/models/m:predict", data=body, headers={"Content-Type": "application/json"}, timeout=120))
            for _ in range(8)]
        for t in bodies:
            t.start()
        for t in bodies:
            t.join()
        eight = vm_hwm_kib(pid)
        print(f"vwfcgi VmHWM: {before} KiB idle, {one} KiB after one {len(body)}-byte body, {eight} KiB after eight at once")
        assert (one - before) * 1024 <= 4 * len(body), f"one request raised the peak by {one - before} KiB"
        assert eight < 150 * 1024, f"eight requests: peak {eight} KiB"
        assert stack.predict("m", EXAMPLES).status_code == 200
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
