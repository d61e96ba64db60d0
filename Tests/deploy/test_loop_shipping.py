"""scripts/log-ship.sh and scripts/trainer-sync.sh, tested directly (SPEC §8.7, issue 13 item 5).

log-ship.sh (serving pod sidecar): only closed segments (never the newest of an instance) unless
--final or the stop of --loop; each once (idempotent); write-then-rename into a directory; rclone
copyto into a remote. trainer-sync.sh (trainer pod): pulls complete segments by write-then-rename,
pulls the models an operator changed in the bucket, pushes what the trainer published (.vw last,
never a .vw that does not match its .sha256). The rclone cases use rclone's `:local:` backend.

Every test runs twice: with the system's sh and tools, and with busybox's (sh and every tool the
scripts use), as in the rclone image (Alpine's busybox).
"""

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, run

SHIP = ROOT / "scripts/log-ship.sh"
TRAINER_SYNC = ROOT / "scripts/trainer-sync.sh"
RCLONE = shutil.which("rclone")
needs_rclone = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed (make deploy-tools installs it)")
# The commands the scripts run, besides rclone.
APPLETS = ("sh", "cp", "mv", "awk", "wc", "sha256sum", "cut", "tr", "cat", "mkdir", "rm", "chmod", "sed",
           "sleep", "kill", "ls", "cmp")
PATH = os.environ["PATH"]


@pytest.fixture(autouse=True, params=["system", "busybox"])
def shell(request, tmp_path_factory):
    """Sets PATH for the scripts: the system's tools, or busybox's applets first."""
    global PATH
    if request.param == "busybox":
        busybox = shutil.which("busybox")
        if busybox is None:
            pytest.skip("busybox is not installed (make deploy-tools installs it)")
        applets = tmp_path_factory.mktemp("busybox")
        for name in APPLETS:
            (applets / name).symlink_to(busybox)
        PATH = f"{applets}:{os.environ['PATH']}"
    else:
        PATH = os.environ["PATH"]
    yield request.param
    PATH = os.environ["PATH"]


def base_env() -> dict:
    return {**{k: v for k, v in os.environ.items() if k in ("HOME", "LANG")}, "PATH": PATH}


def line(event: str) -> str:
    return '{"EventId": "%s", "v": 1.0}\n' % event


def segment(state: Path, name: str, file: str, lines: int) -> Path:
    path = state / name / "log" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line(f"{file}-{i}") for i in range(lines)))
    return path


def files(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def ship(state: Path, dest, *args, **env):
    result = run(["sh", SHIP, *args], env={**base_env(), "STATE_DIR": str(state), "LOG_DEST": str(dest), **env})
    assert result.returncode == 0, result.stderr
    return result.stderr


def trainer_sync(mode: str, logs, models, state: Path, out: Path, record: Path, **env):
    result = run(["sh", TRAINER_SYNC, mode], env={
        **base_env(), "LOG_SOURCE": str(logs), "MODEL_SOURCE": str(models), "STATE_DIR": str(state),
        "MODEL_DIR": str(out), "SYNC_RECORD": str(record), "SYNC_CACHE": str(record.parent / "cache"), **env})
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.fixture
def state(tmp_path):
    """Two models; instance a has segments 1, 2 (newest), instance b 5, 10 (newest: seq compared as a number)."""
    root = tmp_path / "state"
    for name in ("m", "n"):
        for file in ("a-1.dsjson", "a-2.dsjson", "b-5.dsjson", "b-10.dsjson"):
            segment(root, name, file, 3)
        # Not segments: never shipped.
        for junk in ("a-3.dsjson.tmp", ".a-4.dsjson", "notes.txt", "a-x.dsjson"):
            (root / name / "log" / junk).write_text("junk\n")
    # The trainer's own files beside the log are not shipped either.
    (root / "m" / "joined").mkdir()
    (root / "m" / "joined" / "1.dsjson").write_text(line("j"))
    return root


CLOSED = [f"{n}/log/{f}" for n in ("m", "n") for f in ("a-1.dsjson", "b-5.dsjson")]
ALL = sorted(CLOSED + [f"{n}/log/{f}" for n in ("m", "n") for f in ("a-2.dsjson", "b-10.dsjson")])


def test_ship_closed_segments_only_each_once(state, tmp_path):
    dest = tmp_path / "bucket-logs"
    dest.mkdir()
    log = ship(state, dest, "--once")
    assert files(dest) == sorted(CLOSED), log
    for rel in CLOSED:
        assert (dest / rel).read_bytes() == (state / rel).read_bytes()
    inodes = {rel: (dest / rel).stat().st_ino for rel in CLOSED}
    # Idempotent: nothing shipped again, nothing rewritten.
    assert "shipped" not in ship(state, dest, "--once")
    assert {rel: (dest / rel).stat().st_ino for rel in CLOSED} == inodes
    # A rotation closes a-2: it is shipped next time, a-3 (now the newest) is not.
    segment(state, "m", "a-3.dsjson", 1)
    log = ship(state, dest, "--once")
    assert "m/log/a-2.dsjson" in files(dest) and "m/log/a-3.dsjson" not in files(dest), log
    assert log.count("shipped") == 1, log


def test_ship_writes_then_renames(state, tmp_path):
    dest = tmp_path / "bucket-logs"
    (dest / "m/log").mkdir(parents=True)
    # An interrupted earlier copy: a leftover temporary file and a short destination file.
    (dest / "m/log/a-1.dsjson.tmp").write_text("partial")
    short = dest / "m/log/a-1.dsjson"
    short.write_text(line("a-1.dsjson-0"))
    old_inode = short.stat().st_ino
    ship(state, dest, "--once")
    assert short.read_bytes() == (state / "m/log/a-1.dsjson").read_bytes()
    assert short.stat().st_ino != old_inode, "rewritten in place instead of written then renamed"
    assert files(dest) == sorted(CLOSED)


def test_final_ships_the_newest_segments_and_again_when_they_grew(state, tmp_path):
    dest = tmp_path / "bucket-logs"
    dest.mkdir()
    ship(state, dest, "--final")
    assert files(dest) == ALL
    with open(state / "m/log/a-2.dsjson", "a") as f:
        f.write(line("late"))
    log = ship(state, dest, "--final")
    assert log.count("shipped") == 1 and (dest / "m/log/a-2.dsjson").read_bytes() == (state / "m/log/a-2.dsjson").read_bytes()


def test_loop_ships_closed_segments_and_everything_on_sigterm(state, tmp_path):
    dest = tmp_path / "bucket-logs"
    dest.mkdir()
    proc = subprocess.Popen(["sh", str(SHIP), "--loop"], env={**base_env(), "STATE_DIR": str(state), "LOG_DEST": str(dest),
                            "SHIP_INTERVAL": "1"}, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while files(dest) != sorted(CLOSED) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert files(dest) == sorted(CLOSED)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert files(dest) == ALL


def markers(state: Path) -> list:
    return sorted(str(p.relative_to(state))[: -len(".shipped")] for p in state.rglob("*.shipped"))


def test_ship_marks_closed_segments_once_their_copy_is_verified(state, tmp_path):
    """Issue 24: `<segment>.shipped` lets vwfcgi delete a segment; only a closed one whose copy equals it gets one."""
    dest = tmp_path / "bucket-logs"
    (dest / "m/log").mkdir(parents=True)
    # A copy that differs from the segment (same size, other bytes): replaced, then marked.
    bad = dest / "m/log/a-1.dsjson"
    bad.write_bytes(b"x" * (state / "m/log/a-1.dsjson").stat().st_size)
    log = ship(state, dest, "--once")
    assert markers(state) == sorted(CLOSED), log
    assert bad.read_bytes() == (state / "m/log/a-1.dsjson").read_bytes()
    for rel in CLOSED:
        assert (state / (rel + ".shipped")).stat().st_size == 0
    # --final ships the newest segments but never marks them: they may still grow.
    ship(state, dest, "--final")
    assert markers(state) == sorted(CLOSED) and files(dest) == ALL
    # Once marked, a closed segment is not compared again; a marker deleted (with nothing else changed) comes back.
    (state / (CLOSED[0] + ".shipped")).unlink()
    log = ship(state, dest, "--once")
    assert markers(state) == sorted(CLOSED) and log.count("marker") == 1 and "shipped " not in log, log


def test_ship_without_markers(state, tmp_path):
    dest = tmp_path / "bucket-logs"
    dest.mkdir()
    ship(state, dest, "--once", SHIP_MARK="0")
    assert files(dest) == sorted(CLOSED) and markers(state) == []
    result = run(["sh", SHIP, "--once"], env={**base_env(), "STATE_DIR": str(state), "LOG_DEST": str(dest), "SHIP_MARK": "yes"})
    assert result.returncode == 2 and "SHIP_MARK must be 0 or 1" in result.stderr


def test_ship_refuses_a_bad_destination(state, tmp_path):
    result = run(["sh", SHIP, "--once"], env={"PATH": PATH, "STATE_DIR": str(state),
                                             "LOG_DEST": str(tmp_path / "missing")})
    assert result.returncode == 2 and "neither a directory nor an rclone remote" in result.stderr
    result = run(["sh", SHIP, "--once"], env={"PATH": PATH, "STATE_DIR": str(state)})
    assert result.returncode == 2 and "LOG_DEST is not set" in result.stderr


@needs_rclone
def test_ship_to_an_rclone_remote(state, tmp_path):
    dest = tmp_path / "remote"
    record = tmp_path / "record"
    log = ship(state, f":local:{dest}", "--once", SHIP_RECORD=str(record))
    assert files(dest) == sorted(CLOSED), log
    assert "shipped" not in ship(state, f":local:{dest}", "--once", SHIP_RECORD=str(record))
    ship(state, f":local:{dest}", "--final", SHIP_RECORD=str(record))
    assert files(dest) == ALL
    for rel in ALL:
        assert (dest / rel).read_bytes() == (state / rel).read_bytes()
    # Marked once the object's size was read back (rclone lsf); the newest never.
    assert markers(state) == sorted(CLOSED)


# ---------------------------------------------------------------- trainer-sync.sh
def model(directory: Path, name: str, payload: bytes, digest: bool = True, json: str = '{"input": "vw_json"}\n'):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json)
    if digest:
        (directory / f"{name}.sha256").write_text(hashlib.sha256(payload).hexdigest() + f"  {name}.vw\n")
    (directory / f"{name}.vw").write_bytes(payload)


@pytest.fixture
def bucket(state, tmp_path):
    """A bucket: logs shipped by the pods (--final: every segment) and the base models."""
    root = tmp_path / "bucket"
    (root / "logs").mkdir(parents=True)
    ship(state, root / "logs", "--final")
    (root / "logs/m/log/c-1.dsjson.tmp").write_text("an upload in progress")
    model(root / "models", "m", b"base-m")
    model(root / "models", "n", b"base-n", digest=False)
    return root


def test_trainer_pulls_complete_segments_and_models(state, bucket, tmp_path):
    tstate, out, record = tmp_path / "tstate", tmp_path / "out", tmp_path / "record"
    trainer_sync("--once", bucket / "logs", bucket / "models", tstate, out, record)
    assert files(tstate) == ALL
    assert files(out) == ["m.json", "m.sha256", "m.vw", "n.json", "n.vw"]
    assert (out / "m.vw").read_bytes() == b"base-m"
    # Idempotent; a segment that grew in the bucket (the stop of a pod) is pulled again, by rename.
    assert "pulled" not in trainer_sync("--once", bucket / "logs", bucket / "models", tstate, out, record)
    pulled = tstate / "m/log/a-2.dsjson"
    inode = pulled.stat().st_ino
    with open(bucket / "logs/m/log/a-2.dsjson", "a") as f:
        f.write(line("late"))
    trainer_sync("--once", bucket / "logs", bucket / "models", tstate, out, record)
    assert pulled.read_bytes() == (bucket / "logs/m/log/a-2.dsjson").read_bytes() and pulled.stat().st_ino != inode
    # The trainer's own state beside the logs is left alone.
    (tstate / "m/join-state.json").write_text("{}")
    trainer_sync("--once", bucket / "logs", bucket / "models", tstate, out, record)
    assert (tstate / "m/join-state.json").read_text() == "{}"
    # A segment `vwfcgi train` deleted (joined, past its retention) is not pulled again; one that grew in the
    # bucket since is.
    (tstate / "m/log/a-1.dsjson").unlink()
    (tstate / "m/log/a-2.dsjson").unlink()
    with open(bucket / "logs/m/log/a-2.dsjson", "a") as f:
        f.write(line("later"))
    log = trainer_sync("--once", bucket / "logs", bucket / "models", tstate, out, record)
    assert not (tstate / "m/log/a-1.dsjson").exists() and (tstate / "m/log/a-2.dsjson").exists(), log


def test_trainer_pushes_published_models_and_the_operator_wins(bucket, tmp_path):
    tstate, out, record = tmp_path / "tstate", tmp_path / "out", tmp_path / "record"
    models = bucket / "models"
    trainer_sync("--once", bucket / "logs", models, tstate, out, record)
    # Nothing published yet: nothing pushed.
    assert "pushed" not in trainer_sync("--round", bucket / "logs", models, tstate, out, record)

    # The trainer is mid-publish: a new .vw, the old .sha256: not pushed.
    (out / "m.vw").write_bytes(b"learned-1")
    log = trainer_sync("--round", bucket / "logs", models, tstate, out, record)
    assert "not pushed yet" in log and (models / "m.vw").read_bytes() == b"base-m"
    # Published: pushed, .vw last (and each file by rename).
    model(out, "m", b"learned-1")
    trainer_sync("--round", bucket / "logs", models, tstate, out, record)
    assert (models / "m.vw").read_bytes() == b"learned-1"
    assert (models / "m.sha256").read_text().split()[0] == hashlib.sha256(b"learned-1").hexdigest()
    assert not list(models.glob("*.tmp"))
    # Idempotent, and the bucket's copy of our own push is not pulled back as an operator's.
    log = trainer_sync("--round", bucket / "logs", models, tstate, out, record)
    assert "pushed" not in log and "pulled model" not in log

    # An operator uploads a new base while the trainer publishes: the operator's file wins.
    model(models, "m", b"operator-base")
    model(out, "m", b"learned-2")
    log = trainer_sync("--round", bucket / "logs", models, tstate, out, record)
    assert "pulled model m" in log
    assert (out / "m.vw").read_bytes() == (models / "m.vw").read_bytes() == b"operator-base"


@needs_rclone
def test_trainer_sync_with_rclone_remotes(bucket, tmp_path):
    tstate, out, record = tmp_path / "tstate", tmp_path / "out", tmp_path / "record"
    # Before any pod shipped a segment, the logs prefix may not exist: nothing to pull, no error.
    trainer_sync("--once", f":local:{tmp_path / 'no-logs-yet'}", f":local:{bucket / 'models'}", tstate, out, record)
    assert files(tstate) == [] and (out / "m.vw").read_bytes() == b"base-m"
    logs, models = f":local:{bucket / 'logs'}", f":local:{bucket / 'models'}"
    trainer_sync("--once", logs, models, tstate, out, record)
    assert files(tstate) == ALL
    assert (out / "m.vw").read_bytes() == b"base-m"
    model(out, "m", b"learned-1")
    trainer_sync("--round", logs, models, tstate, out, record)
    assert (bucket / "models/m.vw").read_bytes() == b"learned-1"
    log = trainer_sync("--round", logs, models, tstate, out, record)
    assert "pushed" not in log and "pulled" not in log
