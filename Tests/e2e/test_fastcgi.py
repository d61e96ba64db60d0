"""FastCGI framing through nginx's kept-alive upstream connections.

Regression: a body filling libfcgi's 8 KiB reads exactly left the empty end-of-stdin record
unread; the next request on that connection then failed with 502.
"""

import pytest



def text_body(size: int) -> bytes:
    """Valid single-line VW examples totalling exactly `size` bytes."""
    lines = []
    total = 0
    while size - total > 500:
        line = f" |a x:0.5 |b y:0.25 |c k{len(lines)} " + "q" * 200 + "\n"
        lines.append(line)
        total += len(line)
    head = " |a x:0.5 |c "
    lines.append(head + "p" * (size - total - len(head) - 1) + "\n")
    body = "".join(lines).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("size", [8191, 8192, 8193, 16384, 24576, 65536, 65537])
def test_bodies_at_record_boundaries_leave_the_connection_usable(stack, size, unharmed):
    body = text_body(size)
    for attempt in range(4):
        r = stack.post("/v1/models/logistic:predict", data=body, headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, f"attempt {attempt}: {r.status_code} {r.text[:200]!r}"
        assert r.text.count("\n") == body.count(b"\n")
        unharmed()


def _fastcgi():
    import sys
    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "docker"))
    import fcgi_probe
    return fcgi_probe


def _read_response(sock, fcgi) -> int:
    """Reads one response up to FCGI_END_REQUEST; returns its HTTP status."""
    import struct
    buffer, out = b"", b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, "vwfcgi closed the kept-alive connection"
        buffer += chunk
        while len(buffer) >= 8:
            _, kind, _, size, padding = struct.unpack(">BBHHBx", buffer[:8])
            if len(buffer) < 8 + size + padding:
                break
            content, buffer = buffer[8:8 + size], buffer[8 + size + padding:]
            if kind == fcgi.STDOUT:
                out += content
            elif kind == fcgi.END_REQUEST:
                return fcgi.parse(out)[0]


def test_end_of_body_record_arriving_late_is_consumed(stack):
    """The empty FCGI_STDIN record is part of the request even when it comes in a later packet."""
    import socket
    import struct
    import time
    fcgi = _fastcgi()
    body = b'{"instances": [" |a x:1"]}'
    params = {"REQUEST_METHOD": "POST", "DOCUMENT_URI": "/v1/models/logistic:predict",
              "REQUEST_URI": "/v1/models/logistic:predict", "CONTENT_TYPE": "application/json",
              "CONTENT_LENGTH": str(len(body))}
    encoded = b"".join(fcgi.pair(k, v) for k, v in params.items())
    keep_conn = 1
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(stack.socket_path))
        for request_id in (1, 2, 3):
            sock.sendall(fcgi.record(fcgi.BEGIN_REQUEST, struct.pack(">HB5x", fcgi.RESPONDER, keep_conn), request_id)
                         + fcgi.record(fcgi.PARAMS, encoded, request_id) + fcgi.record(fcgi.PARAMS, b"", request_id)
                         + fcgi.record(fcgi.STDIN, body, request_id))
            time.sleep(0.2)
            sock.sendall(fcgi.record(fcgi.STDIN, b"", request_id))
            assert _read_response(sock, fcgi) == 200, f"request {request_id}"
