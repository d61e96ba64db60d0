"""The nginx template on its own (no vwfcgi behind it): renders, passes `nginx -t`, and every
answer nginx makes itself is JSON."""

import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from conftest import RENDER, assert_json_error, free_port


def raw_get(port: int, target: str):
    """GET with the request target sent as is; returns (status, lower-case headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:]))
    return int(lines[0].split()[1]), headers, body.decode()


def start_nginx(tmp: Path, **env_extra):
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, PREFIX=str(tmp / "nginx"), SOCKET=str(tmp / "absent.sock"), PORT=str(port),
               MAX_BODY="64k", **env_extra)
    conf = tmp / "nginx.conf"
    conf.write_text(subprocess.run([str(RENDER)], env=env, check=True, capture_output=True, text=True).stdout)
    subprocess.run(["nginx", "-e", "stderr", "-t", "-q", "-p", str(tmp / "nginx"), "-c", str(conf)], check=True)
    proc = subprocess.Popen(["nginx", "-e", "stderr", "-p", str(tmp / "nginx"), "-c", str(conf), "-g", "daemon off;"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            # From another address than the tests' 127.0.0.1, whose connections limit_conn counts.
            raw_get_from(port, "/", "127.0.0.3")
            return proc, port
        except ConnectionError:
            assert proc.poll() is None, "nginx exited"
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("nginx did not start")


def test_nginx_own_errors_are_json_without_vwfcgi():
    with tempfile.TemporaryDirectory(prefix="vwfcgi-nginx-", dir="/tmp") as tmp:
        proc, port = start_nginx(Path(tmp))
        try:
            base = f"http://127.0.0.1:{port}"
            with requests.Session() as s:
                assert_json_error(s.get(f"{base}/nothing", timeout=10), 404)
                assert_json_error(s.get(f"{base}/.vwfcgi-error/503", timeout=10), 404)
                body = assert_json_error(s.get(f"{base}/healthz", timeout=10), 502)
                assert "vwfcgi" in body["error"]
                assert_json_error(s.post(f"{base}/v1/models/m:predict", json={"instances": []}, timeout=10), 502)
                assert_json_error(s.post(f"{base}/v1/models/m:predict", data=b"x" * 100_000, timeout=10), 413)
            r = requests.request("TRACE", f"{base}/healthz", timeout=10)
            assert_json_error(r, 405)
            # A request nginx rejects before it has a URI still gets JSON (requests would quote the %).
            status, headers, body = raw_get(port, "/%")
            assert status == 400 and headers.get("content-type", "").startswith("application/json"), (status, body)
            assert json.loads(body)["error"]
            r = requests.get(f"{base}/healthz", headers={"X-Big": "a" * 20000}, timeout=10)
            assert_json_error(r, 400)
        finally:
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=15)


def test_render_rejects_missing_prefix_and_bad_port():
    env = {k: v for k, v in os.environ.items() if k not in ("PREFIX", "SOCKET", "PORT", "UPSTREAM")}
    r = subprocess.run([str(RENDER)], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "PREFIX" in r.stderr
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        r = subprocess.run([str(RENDER)], env=dict(env, PREFIX=tmp, SOCKET="/tmp/x.sock", PORT="80; evil"),
                           capture_output=True, text=True)
        assert r.returncode != 0 and "PORT" in r.stderr


def read_reply(conn: socket.socket, bound: float = 10) -> tuple[int, dict, str]:
    """(status, lower-case headers, body) of one reply; (0, {}, "") when the connection closes without one."""
    conn.settimeout(bound)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
                dict((l.split(b":", 1)[0].strip().lower(), l.split(b":", 1)[1].strip())
                     for l in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:] if b":" in l).get(b"content-length", b"0")):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    if not data:
        return 0, {}, ""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l))
    return int(lines[0].split()[1]), headers, body.decode()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return conn


TRICKLE_HEAD = ("POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{").encode()


def test_slow_and_many_clients_do_not_take_the_service():
    """A client trickling its body is cut at client_body_timeout (nginx closes a timed-out
    connection without a reply, and resets it); one address holding many connections gets a JSON
    429 beyond LIMIT_CONN; 1,500 idle connections leave the service reachable to others.

    Correct by construction, whatever order nginx's workers take the connections in: the 429s are
    counted among all 25 connections (which 5 are refused is nginx's choice), on an nginx whose
    body and header timeouts (30 s) cannot free a slot while the 25 are counted."""
    with tempfile.TemporaryDirectory(prefix="vwfcgi-nginx-", dir="/tmp") as tmp:
        proc, port = start_nginx(Path(tmp) / "short", CLIENT_BODY_TIMEOUT="1s", CLIENT_HEADER_TIMEOUT="1s")
        try:
            conf = (Path(tmp) / "short" / "nginx.conf").read_text()
            for directive in ("reset_timedout_connection on;", "client_body_timeout 1s;", "send_timeout 10s;"):
                assert directive in conf, f"{directive} missing from the rendered config"
            # A trickling body is cut after the 1 s timeout (bounded wait: 10 s), not held open.
            conn = connect(port)
            conn.sendall(TRICKLE_HEAD)
            status, headers, body = read_reply(conn)
            conn.close()
            assert status in (0, 408), (status, body)
            if status == 408:
                assert headers.get("content-type", "").startswith("application/json"), (status, body)
        finally:
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=15)

        proc, port = start_nginx(Path(tmp) / "long", CLIENT_BODY_TIMEOUT="30s", CLIENT_HEADER_TIMEOUT="30s",
                                 LIMIT_CONN="20")
        held: list[socket.socket] = []
        try:
            conf = (Path(tmp) / "long" / "nginx.conf").read_text()
            for directive in ("worker_connections 4096;", "worker_rlimit_nofile 8192;", "limit_conn vw_per_client 20;"):
                assert directive in conf, f"{directive} missing from the rendered config"
            # 25 connections from one address each trickling a body: 20 are held, 5 get a JSON 429 at once.
            for _ in range(25):
                conn = connect(port)
                conn.sendall(TRICKLE_HEAD)
                held.append(conn)
            replies = replies_within(held, count=5, bound=10)
            assert sorted(status for status, _, _ in replies.values()) == [429] * 5, replies
            for status, headers, body in replies.values():
                assert headers.get("content-type", "").startswith("application/json") and json.loads(body)["error"], body
            # The 20 others are held (their bodies still trickling), not answered.
            assert not replies_within([c for c in held if c not in replies], count=1, bound=0.5)
            # 1,500 idle connections (nothing sent) on top: another address is still answered.
            for _ in range(1500):
                held.append(connect(port))
            status, headers, body = raw_get_from(port, "/healthz", "127.0.0.2")
            assert status == 502 and json.loads(body)["error"], (status, body)  # nginx answers; no vwfcgi here
        finally:
            for conn in held:
                conn.close()
            proc.send_signal(signal.SIGQUIT)
            proc.wait(timeout=15)


def replies_within(conns: list[socket.socket], count: int, bound: float) -> dict:
    """The replies (as read_reply gives them) of the first `count` connections of `conns` that answer
    or close within `bound` seconds, whichever they are."""
    replies = {}
    deadline = time.monotonic() + bound
    waiting = list(conns)
    while len(replies) < count and waiting and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(waiting, [], [], left)
        for conn in readable:
            replies[conn] = read_reply(conn, 5)
            waiting.remove(conn)
    return replies


def raw_get_from(port: int, target: str, source: str):
    conn = connect(port, source)
    try:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return read_reply(conn)
    finally:
        conn.close()
