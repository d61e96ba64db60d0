"""Process hygiene (SPEC §3, §6): nothing listens but nginx, the FastCGI socket is a 0660 unix
socket, and SIGTERM stops vwfcgi with exit 0 and no vw process left behind."""

import os
import socket
import subprocess
import re
import signal
import stat
import time
from pathlib import Path

import pytest

from conftest import VWFCGI_BIN, Stack, alive, cmdline, descendants, wait_until

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def inet_sockets() -> dict[int, str]:
    """inode -> "proto local-address" for every listening TCP socket and every bound UDP socket."""
    out = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if proto.startswith("tcp") and state != LISTEN:
                continue
            out[inode] = f"{proto} {local}"
    return out


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(int(m.group(1)))
    return inodes


def test_nothing_of_vwfcgi_listens_on_a_network_port(stack):
    pids = {stack.vwfcgi.pid} | descendants(stack.vwfcgi.pid)
    assert len(pids) > 1, "vwfcgi has no vw children"
    sockets = inet_sockets()
    owned = {}
    for pid in pids:
        for inode in socket_inodes(pid) & set(sockets):
            owned[pid] = (cmdline(pid)[:120], sockets[inode])
    assert not owned, f"vwfcgi or its vw children listen on network sockets: {owned}"

    # nginx listens, on its port only.
    nginx_pids = {stack.nginx.pid} | descendants(stack.nginx.pid)
    ports = set()
    for pid in nginx_pids:
        for inode in socket_inodes(pid) & set(sockets):
            ports.add(int(sockets[inode].split()[1].split(":")[1], 16))
    assert ports == {stack.port}, f"nginx listens on {ports}, want only {stack.port}"


def test_fastcgi_socket_is_unix_socket_mode_0660(stack):
    st = os.stat(stack.socket_path)
    assert stat.S_ISSOCK(st.st_mode), "FastCGI endpoint is not a unix socket"
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(stat.S_IMODE(st.st_mode))


def test_sigterm_stops_vwfcgi_with_exit_0_and_no_vw_left(model_dir, canary):
    s = Stack(model_dir, shards=2).start()
    try:
        lines, _ = canary
        assert s.predict("logistic", lines).status_code == 200
        children = descendants(s.vwfcgi.pid)
        assert len(children) >= 6, f"want 2 shards x 3 models, vwfcgi has children {children}"
        commands = {pid: cmdline(pid) for pid in children}
        s.vwfcgi.send_signal(signal.SIGTERM)
        code = s.vwfcgi.wait(timeout=30)
        assert code == 0, f"vwfcgi exited with {code} on SIGTERM\n{s.logs()}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) and cmdline(p) == c for p, c in commands.items()):
            time.sleep(0.1)
        left = {p: c for p, c in commands.items() if alive(p) and cmdline(p) == c}
        assert not left, f"vw processes left after vwfcgi stopped: {left}"
        # nginx is still up and says so in JSON.
        r = s.get("/healthz")
        assert r.status_code == 502 and r.json()["error"]
    finally:
        problems = s.stop()
    assert not problems, "\n".join(problems)


def test_sigkill_of_vwfcgi_takes_its_vw_children_down(model_dir):
    """Parent death: pipes close and PR_SET_PDEATHSIG fires, so no vw outlives vwfcgi."""
    s = Stack(model_dir, shards=1).start()
    try:
        children = descendants(s.vwfcgi.pid)
        assert children, "vwfcgi has no vw children"
        commands = {pid: cmdline(pid) for pid in children}
        s.vwfcgi.kill()
        s.vwfcgi.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) and cmdline(p) == c for p, c in commands.items()):
            time.sleep(0.1)
        left = {p: c for p, c in commands.items() if alive(p) and cmdline(p) == c}
        assert not left, f"vw processes outlived a killed vwfcgi: {left}"
    finally:
        s.stop(check=False)


def test_a_socket_that_cannot_be_bound_is_named_and_vwfcgi_exits_at_once(tmp_path):
    """`bind/listen: Permission denied` (libfcgi's words, without the path) used to be all an operator
    saw: the error names the socket or address and the reason, and vwfcgi exits non-zero at once."""
    models = tmp_path / "models"
    models.mkdir()
    missing = tmp_path / "no-such-dir" / "vwfcgi.sock"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = f"127.0.0.1:{taken.getsockname()[1]}"
        for where, reason in ((["--socket", str(missing)], f"unix socket {missing}: No such file or directory"),
                              (["--listen", in_use], f"{in_use}: Address already in use")):
            started = time.monotonic()
            r = subprocess.run([str(VWFCGI_BIN), "serve", "--models", str(models), *where],
                               capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            assert r.returncode != 0 and time.monotonic() - started < 10, (r.returncode, r.stderr)
            assert f"cannot listen on {reason}" in r.stderr, r.stderr
            assert "bind/listen" not in r.stderr, r.stderr


@pytest.mark.parametrize("flag, value, message", [
    ("--threads", "0", "--threads must be from 1 to 1024"),
    ("--event-threads", "0", "--event-threads must be from 1 to 256"),
    ("--event-threads", "257", "--event-threads must be from 1 to 256"),
    ("--max-update-bytes", "0", "--max-update-bytes must be a positive byte count"),
    ("--max-update-bytes", "abc", "--max-update-bytes must be a positive byte count"),
])
def test_an_invalid_thread_or_update_setting_is_refused_before_anything_starts(tmp_path, flag, value, message):
    sock = tmp_path / "vwfcgi.sock"
    (tmp_path / "models").mkdir()
    r = subprocess.run([str(VWFCGI_BIN), "serve", "--models", str(tmp_path / "models"), "--socket", str(sock),
                        "--state-dir", str(tmp_path / "state"), flag, value],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert not sock.exists()


def test_connections_beyond_the_cap_wait_in_the_backlog_and_vwfcgi_keeps_its_descriptors(model_dir, tmp_path, monkeypatch):
    """A client opening connection after connection to the FastCGI socket gets at most half of vwfcgi's
    open-files limit (here 256, so 128): vwfcgi's descriptors stay below the limit, and once those
    connections close it serves again (the next closing connection re-arms the listening socket)."""
    import conftest
    wrapper = tmp_path / "vwfcgi-256-files"
    wrapper.write_text(f"#!/bin/sh\nulimit -n 256\nexec {VWFCGI_BIN} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "VWFCGI_BIN", wrapper)
    s = Stack(model_dir).start()
    held = []
    try:
        assert s.get("/healthz").status_code == 200
        for _ in range(300):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(s.socket_path))
            held.append(c)
        # vwfcgi accepts 128 of them (and holds its own descriptors besides) and leaves the rest in the backlog.
        def descriptors() -> int:
            return len(os.listdir(f"/proc/{s.vwfcgi.pid}/fd"))
        assert wait_until(lambda: descriptors() > 128, 30)
        time.sleep(0.5)  # room for accepts past the cap, were there any
        assert descriptors() < 256 - 16, f"vwfcgi holds {descriptors()} descriptors of its 256"
        assert "max_connections=128" in s.vwfcgi_log.read_text(errors="replace")
    finally:
        for c in held:
            c.close()
    try:
        r = s.predict("logistic", ["|f a:1"])
        assert r.status_code == 200, r.text
        assert s.get("/healthz").status_code == 200
    finally:
        problems = s.stop()
        assert not problems, "\n".join(problems)
