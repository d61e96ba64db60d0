"""Every limit, configured small, through nginx (issue 8): body size (nginx and vwfcgi), instances
per request, line length, features per example, JSON nesting depth, header size, request time,
and slow clients (slowloris-style trickled header or body bytes). Each error is JSON, and after
each a correct prediction still comes back. Also nginx's own hardening: `server_tokens off`, only
SPEC routes proxied, methods restricted per route.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import Stack, assert_json_error, assert_scalar_predictions

MAX_BODY_BYTES = 64 * 1024      # vwfcgi --max-body-bytes
NGINX_MAX_BODY = "128k"         # nginx client_max_body_size
MAX_BATCH = 20
MAX_LINE_BYTES = 300
MAX_FEATURES = 10
MAX_JSON_DEPTH = 6
TIMEOUT = 2                     # vwfcgi --timeout (seconds)
THREADS = 16                    # vwfcgi --threads: fewer than the slow clients below
CLIENT_TIMEOUT = 3              # nginx client_header_timeout / client_body_timeout (seconds)
SLOW_CLIENTS = 40

GOOD = " |a x0:0.5 x1:-0.25 |b y0:0.1 |c color=red w:0.3"


@pytest.fixture(scope="module")
def limits_stack(model_dir):
    env = {"CLIENT_HEADER_TIMEOUT": f"{CLIENT_TIMEOUT}s", "CLIENT_BODY_TIMEOUT": f"{CLIENT_TIMEOUT}s", "KEEPALIVE": "2"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # read by nginx/render.sh through Stack.start
    try:
        # `--engine vw`: the last test stops vw and expects its 504 (a native model would answer).
        s = Stack(model_dir, shards=1, max_body=NGINX_MAX_BODY, extra_args=(
            "--engine", "vw", "--max-body-bytes", str(MAX_BODY_BYTES), "--max-batch", str(MAX_BATCH),
            "--max-line-bytes", str(MAX_LINE_BYTES), "--max-features", str(MAX_FEATURES),
            "--max-json-depth", str(MAX_JSON_DEPTH), "--timeout", str(TIMEOUT), "--threads", str(THREADS),
        )).start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)




@pytest.fixture
def still_serves(limits_stack, canary):
    def check(deadline: float = 0):
        lines, want = canary
        end = time.monotonic() + deadline
        while True:
            r = limits_stack.predict("logistic", lines)
            if r.status_code == 200 or time.monotonic() >= end:
                break
            time.sleep(0.2)
        assert r.status_code == 200, f"server harmed: {r.status_code} {r.text[:300]!r}"
        assert_scalar_predictions(r.json()["predictions"], want)
    return check


def post_json(stack, body: bytes, model: str = "logistic"):
    return stack.post(f"/v1/models/{model}:predict", data=body, headers={"Content-Type": "application/json"})


# ------------------------------------------------------------------ body size
def test_body_over_nginx_limit_is_413_from_nginx(limits_stack, still_serves):
    body = json.dumps({"instances": [GOOD]}).encode() + b" " * (200 * 1024)
    r = post_json(limits_stack, body)
    body = assert_json_error(r, 413)
    assert body["error"] == "request body too large"  # nginx's own answer
    still_serves()


def test_body_over_vwfcgi_limit_is_413_from_vwfcgi(limits_stack, still_serves):
    body = json.dumps({"instances": [GOOD]}).encode() + b" " * (MAX_BODY_BYTES + 100)
    assert len(body) < 128 * 1024
    r = post_json(limits_stack, body)
    assert_json_error(r, 413, contains=str(MAX_BODY_BYTES))
    # Right at the limit is fine.
    body = json.dumps({"instances": [GOOD]}).encode()
    r = post_json(limits_stack, body + b" " * (MAX_BODY_BYTES - len(body)))
    assert r.status_code == 200, r.text
    still_serves()


# ------------------------------------------------------------------ instances, lines, features, depth
def test_instances_per_request(limits_stack, still_serves):
    assert_json_error(limits_stack.predict("logistic", [GOOD] * (MAX_BATCH + 1)), 413, contains=str(MAX_BATCH))
    r = limits_stack.post("/v1/models/logistic:predict", data=(GOOD + "\n") * (MAX_BATCH + 1),
                          headers={"Content-Type": "text/plain"})
    assert_json_error(r, 413)
    r = limits_stack.predict("logistic", [GOOD] * MAX_BATCH)
    assert r.status_code == 200 and len(r.json()["predictions"]) == MAX_BATCH
    still_serves()


def test_line_length(limits_stack, still_serves):
    long_line = " |a " + " ".join(f"f{i}" for i in range(200))[: MAX_LINE_BYTES - 4]
    assert len(long_line.encode()) == MAX_LINE_BYTES
    # Over the line limit, under the feature limit is not possible here: cut features to 1 long name.
    at_limit = " |a " + "x" * (MAX_LINE_BYTES - 4)
    over = at_limit + "x"
    r = limits_stack.predict("logistic", [GOOD, over])
    assert_json_error(r, 400, contains="instance 1")
    assert f"longer than {MAX_LINE_BYTES}" in r.json()["error"]
    r = limits_stack.post("/v1/models/logistic:predict", data=(over + "\n").encode(), headers={"Content-Type": "text/plain"})
    assert_json_error(r, 400, contains=f"longer than {MAX_LINE_BYTES}")
    assert limits_stack.predict("logistic", [at_limit]).status_code == 200
    still_serves()


def test_features_per_example(limits_stack, still_serves):
    many = " |a " + " ".join(f"f{i}:1" for i in range(MAX_FEATURES + 1))
    r = limits_stack.predict("logistic", [many])
    assert_json_error(r, 400, contains=f"more than {MAX_FEATURES} features")
    structured = {"features": {"a": {f"f{i}": 1 for i in range(6)}, "b": {f"g{i}": True for i in range(5)}}}
    assert_json_error(limits_stack.predict("logistic", [structured]), 400, contains=f"more than {MAX_FEATURES} features")
    ok = " |a " + " ".join(f"f{i}:1" for i in range(MAX_FEATURES))
    assert limits_stack.predict("logistic", [ok]).status_code == 200
    still_serves()


def test_json_nesting_depth(limits_stack, still_serves):
    deep = b'{"instances": [' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"]}"
    assert_json_error(post_json(limits_stack, deep), 400, contains=f"nesting deeper than {MAX_JSON_DEPTH}")
    very_deep = b'{"instances": ' + b"[" * 30000 + b"]" * 30000 + b"}"  # under the body limit
    assert_json_error(post_json(limits_stack, very_deep), 400, contains="nesting deeper")
    # A structured instance is 5 levels deep: within the limit.
    r = limits_stack.predict("logistic", [{"features": {"a": {"x0": 1}}}])
    assert r.status_code == 200, r.text
    still_serves()


# ------------------------------------------------------------------ headers, request line
def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        out = b""
        try:
            while chunk := conn.recv(65536):
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    return out


def status_and_body(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return int(lines[0].split()[1]), headers, body


def test_header_size(limits_stack, still_serves):
    r = limits_stack.get("/healthz", headers={"X-Big": "a" * 9000})
    assert_json_error(r, 400, contains="headers too large")
    r = limits_stack.get("/healthz", headers={f"X-H{i}": "a" * 7000 for i in range(6)})
    assert_json_error(r, 400)
    status, headers, body = status_and_body(raw_request(
        limits_stack.port, b"GET /healthz?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 414 and headers["content-type"].startswith("application/json"), (status, body)
    assert json.loads(body)["error"]
    r = limits_stack.get("/healthz", headers={"X-Fine": "a" * 4000})
    assert r.status_code == 200
    still_serves()


# ------------------------------------------------------------------ nginx hardening
def test_server_tokens_off(limits_stack):
    for r in (limits_stack.get("/healthz"), limits_stack.get("/nothing"), limits_stack.request("TRACE", "/healthz")):
        assert r.headers.get("Server") == "nginx", r.headers  # no version
    r = limits_stack.get("/nothing")
    assert "nginx/" not in r.text


@pytest.mark.parametrize("path", ["/v1/", "/v1/nothing", "/v1/nothing/here", "/v1/models/logistic:explain",
                                  "/v1/models/logistic/extra", "/v1/models/-bad", "/v1/models/" + "a" * 129,
                                  "/healthz/", "/metrics/x", "/index.html", "/.vwfcgi-error/404"])
def test_only_spec_routes_reach_vwfcgi(limits_stack, still_serves, path):
    r = limits_stack.get(path)
    body = assert_json_error(r, 404)
    assert body["error"] == "not found", f"{path} reached vwfcgi: {body}"  # nginx's own 404
    still_serves()


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/models/logistic:predict", "POST"),
    ("PUT", "/v1/models/logistic:predict", "POST"),
    ("DELETE", "/v1/models/logistic:predict", "POST"),
    ("POST", "/v1/models", "GET, HEAD"),
    ("DELETE", "/v1/models/", "GET, HEAD"),
    ("POST", "/v1/models/logistic", "GET, HEAD"),
    ("PATCH", "/v1/models/logistic", "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("PUT", "/readyz", "GET, HEAD"),
    ("DELETE", "/metrics", "GET, HEAD"),
    ("OPTIONS", "/healthz", "GET, HEAD"),
])
def test_methods_restricted_per_route_in_nginx(limits_stack, still_serves, method, path, allow):
    r = limits_stack.request(method, path, data=b"{}")
    body = assert_json_error(r, 405)
    assert body["error"] == "method not allowed", f"{method} {path} reached vwfcgi: {body}"
    assert r.headers.get("Allow") == allow
    still_serves()


def test_allowed_methods_pass(limits_stack):
    for method, path in [("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
                         ("GET", "/v1/models"), ("GET", "/v1/models/"), ("GET", "/v1/models/logistic"),
                         ("HEAD", "/v1/models/logistic")]:
        assert limits_stack.request(method, path).status_code == 200, (method, path)
    # A valid but unknown model name reaches vwfcgi, which says which model.
    assert_json_error(limits_stack.predict("no.such-model_1", [GOOD]), 404, contains="no.such-model_1")


# ------------------------------------------------------------------ slow clients
def _slow_header_client(port: int, results: list, index: int, started: threading.Semaphore) -> None:
    """Sends the request line and headers one byte at a time, never finishing them."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"POST /v1/models/logistic:predict HTTP/1.1\r\nHost: x\r\n")
            started.release()
            conn.settimeout(0.5)
            while time.monotonic() - start < 20:
                try:
                    conn.sendall(b"X")
                except OSError:
                    break
                try:
                    if conn.recv(4096) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
                break  # any bytes: nginx answered (408) and closes
    except OSError:
        pass
    results[index] = time.monotonic() - start


def _slow_body_client(port: int, results: list, index: int, started: threading.Semaphore) -> None:
    """Sends full headers announcing a body, then one byte, then nothing for longer than the body timeout."""
    start = time.monotonic()
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"POST /v1/models/logistic:predict HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            started.release()
            conn.settimeout(20)
            try:
                while chunk := conn.recv(4096):
                    answer += chunk
            except OSError:
                pass
    except OSError:
        pass
    results[index] = (time.monotonic() - start, answer)


def test_slow_clients_are_cut_by_nginx_without_tying_up_vwfcgi(limits_stack, canary, still_serves):
    """40 slow clients (more than vwfcgi's 16 threads) hang on nginx; predictions keep succeeding.

    nginx reads a whole request before it opens a FastCGI request, so no vwfcgi thread ever waits
    on a client: this is asserted through successful predictions while the slow clients are
    connected (not through timings), then that nginx cut every slow client.
    """
    port = limits_stack.port
    header_results: list = [None] * (SLOW_CLIENTS // 2)
    body_results: list = [None] * (SLOW_CLIENTS // 2)
    started = threading.Semaphore(0)
    threads = [threading.Thread(target=_slow_header_client, args=(port, header_results, i, started), daemon=True)
               for i in range(len(header_results))]
    threads += [threading.Thread(target=_slow_body_client, args=(port, body_results, i, started), daemon=True)
                for i in range(len(body_results))]
    for t in threads:
        t.start()
    # Every slow client connected and sent its first bytes (waited for, not guessed with a sleep).
    for _ in threads:
        assert started.acquire(timeout=10), "a slow client could not connect"
    lines, want = canary
    ok = 0
    # While every slow client is still connected (they are cut after CLIENT_TIMEOUT s).
    deadline = time.monotonic() + CLIENT_TIMEOUT - 1.0
    while time.monotonic() < deadline:
        r = limits_stack.predict("logistic", lines, timeout=5)
        assert r.status_code == 200, f"prediction failed while slow clients hang: {r.status_code} {r.text[:200]}"
        assert_scalar_predictions(r.json()["predictions"], want)
        ok += 1
    assert ok >= 5, f"only {ok} predictions while slow clients were connected"
    still_alive = sum(1 for t in threads if t.is_alive())
    assert still_alive == SLOW_CLIENTS, f"only {still_alive} slow clients were still connected during the predictions"
    for t in threads:
        t.join(timeout=30)
    assert all(not t.is_alive() for t in threads), "a slow client was never cut"
    # Header tricklers: cut by client_header_timeout (the whole header must arrive in time).
    assert all(d is not None and d < CLIENT_TIMEOUT + 5 for d in header_results), header_results
    # Body stallers: cut by client_body_timeout, with nginx's JSON 408 (or a plain close).
    for elapsed, answer in body_results:
        assert elapsed < CLIENT_TIMEOUT + 5, body_results
        if answer:
            status, headers, body = status_and_body(answer)
            assert status == 408 and headers.get("content-type", "").startswith("application/json"), answer[:300]
    still_serves()


# ------------------------------------------------------------------ request time (last: it stops vw)
def test_request_time_limit_gives_504_json(limits_stack, still_serves):
    shards = limits_stack.get("/v1/models/logistic").json()["shards"]
    pids = [s["pid"] for s in shards]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        r = limits_stack.predict("logistic", [GOOD], timeout=30)
        elapsed = time.monotonic() - start
        assert_json_error(r, 504)
        assert elapsed < TIMEOUT + 10, f"504 after {elapsed:.1f}s with --timeout {TIMEOUT}"
        # Other models keep answering meanwhile.
        assert limits_stack.predict("oaa", [" |f p0:0.1 p1:0.2 p2:0.3 p3:0.4 |g k=u"]).status_code == 200
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    still_serves(deadline=30)  # the hung shard answers again or was replaced
