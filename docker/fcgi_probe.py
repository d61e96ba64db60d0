"""Probe vwfcgi over its FastCGI socket, without nginx (a Kubernetes exec probe).

    python3 fcgi_probe.py [--socket PATH] [--timeout S] [PATH_INFO]      (default /healthz)

Sends one FastCGI GET request for PATH_INFO and exits 0 when vwfcgi answers 2xx, 1 otherwise
(the status and body go to stderr). It checks the vwfcgi container itself, so a liveness
probe restarts vwfcgi, not nginx, when vwfcgi stops answering.
"""

import argparse
import os
import socket
import struct
import sys

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
RESPONDER = 1


def record(kind: int, content: bytes, request_id: int = 1) -> bytes:
    padding = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", 1, kind, request_id, len(content), padding) + content + b"\0" * padding


def pair(name: str, value: str) -> bytes:
    def length(n: int) -> bytes:
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)

    n, v = name.encode(), value.encode()
    return length(len(n)) + length(len(v)) + n + v


def probe(path: str, timeout: float) -> tuple[int, bytes]:
    params = {
        "REQUEST_METHOD": "GET", "REQUEST_URI": path, "DOCUMENT_URI": path, "SCRIPT_NAME": path,
        "QUERY_STRING": "", "CONTENT_TYPE": "", "CONTENT_LENGTH": "", "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost", "SERVER_PORT": "0", "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0", "GATEWAY_INTERFACE": "CGI/1.1", "HTTP_X_REQUEST_ID": "fcgi-probe",
    }
    body = b"".join(pair(k, v) for k, v in params.items())
    request = (record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0)) + record(PARAMS, body)
               + record(PARAMS, b"") + record(STDIN, b""))
    out = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(args.socket)
        sock.sendall(request)
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 8:
                _, kind, _, size, padding = struct.unpack(">BBHHBx", buffer[:8])
                if len(buffer) < 8 + size + padding:
                    break
                content, buffer = buffer[8:8 + size], buffer[8 + size + padding:]
                if kind == STDOUT:
                    out += content
                elif kind == END_REQUEST:
                    return parse(bytes(out))
    return parse(bytes(out)) if out else (0, b"connection closed without an answer")


def parse(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    if not _:
        head, _, body = response.partition(b"\n\n")
    status = 200  # CGI: no Status header means 200
    for line in head.splitlines():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"status":
            status = int(value.split()[0])
    return status, body


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="/healthz")
    parser.add_argument("--socket", default=os.environ.get("SOCKET", "/run/vwfcgi/vwfcgi.sock"))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    try:
        code, text = probe(args.path, args.timeout)
    except (OSError, ValueError, struct.error) as error:
        print(f"fcgi_probe: {args.path}: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"fcgi_probe: {args.path}: {code} {text.decode(errors='replace').strip()[:200]}", file=sys.stderr)
    sys.exit(0 if 200 <= code < 300 else 1)
