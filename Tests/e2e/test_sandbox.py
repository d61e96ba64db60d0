"""The vw sandbox (SPEC §3, issue 11 item 1): every vw child of a running stack has no new
privileges, a seccomp filter and the rlimits, and each model's status says what is enforced."""

import ctypes
import subprocess
import time
from pathlib import Path

from conftest import REFERENCE_VW, VW_COMMAND, VWFCGI_BIN, Stack, train_small_logistic

_libc = ctypes.CDLL(None, use_errno=True)
LANDLOCK_CREATE_RULESET = 444
LANDLOCK_CREATE_RULESET_VERSION = 1


def landlock_abi() -> int:
    abi = _libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(abi, 0)


EXPECTED_MODE = "landlock+seccomp" if landlock_abi() > 0 else "seccomp"


def proc_fields(pid: int, name: str) -> dict[str, str]:
    """`Key: value` lines of /proc/<pid>/<name>."""
    out = {}
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def limits(pid: int) -> dict[str, str]:
    """Soft limit by name from /proc/<pid>/limits ("Max file size" -> "0")."""
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        out[line[:26].strip()] = line[26:].split()[0]
    return out


def shard_pids(stack, name: str) -> list[int]:
    status = stack.get(f"/v1/models/{name}").json()
    return [shard["pid"] for shard in status["shards"]]


def test_status_shows_the_sandbox_mode(stack):
    for name in ("logistic", "oaa", "cb"):
        r = stack.get(f"/v1/models/{name}")
        assert r.status_code == 200, r.text
        assert r.json()["sandbox"] == EXPECTED_MODE, r.json()
    models = stack.get("/v1/models").json()["models"]
    assert {m["sandbox"] for m in models} == {EXPECTED_MODE}


def test_vw_children_run_without_new_privileges_under_seccomp_and_rlimits(stack):
    pids = [pid for name in ("logistic", "oaa", "cb") for pid in shard_pids(stack, name)]
    assert pids
    for pid in pids:
        status = proc_fields(pid, "status")
        assert status["NoNewPrivs"] == "1", (pid, status)
        assert status["Seccomp"] == "2", (pid, status)
        limit = limits(pid)
        assert limit["Max file size"] == "0", (pid, limit)
        assert limit["Max core file size"] == "0", (pid, limit)
        assert limit["Max address space"] == str(4 << 30), (pid, limit)


def test_the_startup_log_says_what_is_enforced(stack):
    log = stack.vwfcgi_log.read_text(errors="replace")
    assert f"sandbox={EXPECTED_MODE}" in log or f'"sandbox":"{EXPECTED_MODE}"' in log, log[-2000:]


def test_vw_memory_limit_sets_each_vw_address_space(tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    train_small_logistic(model_dir / "m.vw", 1, examples=50)
    stack = Stack(model_dir, shards=2, extra_args=("--vw-memory-limit", "1536M")).start()
    try:
        pids = shard_pids(stack, "m")
        assert len(pids) == 2
        for pid in pids:
            assert limits(pid)["Max address space"] == str(1536 << 20)
        r = stack.predict("m", ["|a x:0.5 |b y:0.2"])
        assert r.status_code == 200, r.text
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_a_memory_limit_too_small_for_vw_refuses_the_model_with_a_reason(tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    train_small_logistic(model_dir / "m.vw", 1, examples=50)
    stack = Stack(model_dir, shards=1, extra_args=("--vw-memory-limit", "8M")).start(ready=False)
    try:
        status = stack.get("/v1/models/m").json()
        for _ in range(100):
            if status["last_error"]:
                break
            time.sleep(0.1)
            status = stack.get("/v1/models/m").json()
        assert status["ready"] is False, status
        assert status["last_error"] and status["last_error"]["reason"], status
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)


def test_a_malformed_memory_limit_is_refused_at_start():
    done = subprocess.run([str(VWFCGI_BIN), "serve", "--models", "/nonexistent", "--socket", "/tmp/unused.sock",
                           "--vw-command", VW_COMMAND, "--vw-memory-limit", "4X"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "--vw-memory-limit" in done.stderr, done.stderr


LDF_TRAIN = "1:0 |a id0 x\n2:1 |a id1 x\n\n1:1 |a id0 y\n2:0 |a id1 y\n\n" * 20


def test_a_save_tag_that_reaches_vw_writes_no_file(tmp_path):
    """Issue 11's file write from HTTP: a BOM before `save_PATH|` on a --csoaa_ldf model made vw
    save its model to PATH. Whatever validation does with it, no file may appear."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (tmp_path / "train.txt").write_text(LDF_TRAIN)
    subprocess.run([REFERENCE_VW, "-d", str(tmp_path / "train.txt"), "-f", str(model_dir / "ldf.vw"),
                    "--csoaa_ldf", "multiline", "--quiet"], check=True, timeout=60)
    target = tmp_path / "written.vw"
    stack = Stack(model_dir, shards=1).start()
    try:
        for body in (f"\ufeffsave_{target}|\n1:0 |a id0 x\n2:0 |a id1 x\n\n",
                     f"1:0 |a id0 x\n\ufeffsave_{target}|\n\n",
                     f"\ufeff1:0 save_{target}|a id0 x\n2:0 |a id1 x\n\n"):
            stack.post("/v1/models/ldf:predict", data=body.encode(), headers={"Content-Type": "text/plain"})
        time.sleep(0.5)
        assert not target.exists() and not Path(f"{target}.writing").exists(), "vw wrote a file"
        r = stack.post("/v1/models/ldf:predict", data="1:0 |a id0 x\n2:0 |a id1 x\n\n",
                       headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
