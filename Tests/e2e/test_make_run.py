"""scripts/run.sh (what `make run` runs, SPEC §2): trains the demo models into an empty MODEL_DIR,
serves it through nginx, prints a curl example, runs side by side with another instance, and
stops both processes on SIGTERM with exit 0."""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from conftest import ROOT, VW_COMMAND, VWFCGI_BIN, alive, descendants, free_port, tail

RUN = ROOT / "scripts" / "run.sh"


def start_run(tmp: Path, name: str):
    port = free_port()
    env = dict(os.environ, MODEL_DIR=str(tmp / f"models-{name}"), PORT=str(port), RUN_DIR=str(tmp / f"run-{name}"),
               STATE_DIR=str(tmp / f"state-{name}"),
               VWFCGI_BIN=str(VWFCGI_BIN), VW_COMMAND=VW_COMMAND, SHARDS="1")
    out = open(tmp / f"{name}.out", "wb")
    proc = subprocess.Popen([str(RUN)], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    return proc, port, tmp / f"{name}.out"


def wait_serving(proc, port, out: Path, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"run.sh exited with {proc.returncode}:\n{tail(out)}"
        if b"Ctrl-C stops both" in out.read_bytes():
            return
        time.sleep(0.2)
    raise AssertionError(f"run.sh not serving within {timeout}s:\n{tail(out)}")


def stop(proc) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return -9
    return proc.returncode


def test_run_script_trains_demo_serves_side_by_side_and_stops_cleanly():
    with tempfile.TemporaryDirectory(prefix="vwfcgi-run-", dir="/tmp") as tmp:
        tmp = Path(tmp)
        first, port1, out1 = start_run(tmp, "a")
        second, port2, out2 = start_run(tmp, "b")
        procs = []
        try:
            wait_serving(first, port1, out1)
            wait_serving(second, port2, out2)
            for name in ("demo.vw", "demo.json", "recommend.vw", "recommend.json"):
                assert (tmp / "models-a" / name).is_file(), f"{name} not trained into the empty MODEL_DIR"
            text = out1.read_text()
            assert f"curl -s -X POST http://127.0.0.1:{port1}/v1/models/demo:predict" in text
            assert f"scripts/simulate_loop.py --url http://127.0.0.1:{port1}/v1/models/recommend" in text
            for port in (port1, port2):
                r = requests.post(f"http://127.0.0.1:{port}/v1/models/demo:predict",
                                  json={"instances": [" |a x:0.5 |b y:0.2"]}, timeout=30)
                assert r.status_code == 200, r.text
                p = r.json()["predictions"][0]
                assert 0.0 < p < 1.0, f"demo model should give a probability (--link logistic), got {p}"
            procs = descendants(first.pid) | descendants(second.pid)
            commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in procs if alive(pid)}
        finally:
            codes = [stop(first), stop(second)]
        assert codes == [0, 0], f"run.sh exit codes {codes}:\n{tail(out1)}\n{tail(out2)}"
        deadline = time.monotonic() + 10
        left = {}
        while time.monotonic() < deadline:
            left = {}
            for pid, cmd in commands.items():
                try:
                    if alive(pid) and Path(f"/proc/{pid}/cmdline").read_bytes() == cmd:
                        left[pid] = cmd
                except OSError:
                    pass
            if not left:
                break
            time.sleep(0.1)
        assert not left, f"processes left after run.sh stopped: {left}"
        for name in ("a", "b"):
            assert b"stopped" in (tmp / f"{name}.out").read_bytes()
