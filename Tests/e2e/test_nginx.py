"""The nginx template on its own (no vwfcgi behind it): renders, passes `nginx -t`, and every
answer nginx makes itself is JSON."""

import json
import os
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
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return proc, port
        except requests.ConnectionError:
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
