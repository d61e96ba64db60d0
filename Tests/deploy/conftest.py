"""Shared helpers of the deployment tests (make deploy-check)."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
OVERLAYS = ("dev", "prod")

# The pod's nginx values; kubernetes/generate.sh renders base/nginx.conf with the same ones.
POD_NGINX_ENV = {
    "PORT": "8080", "LISTEN_ADDR": "0.0.0.0", "SOCKET": "/run/vwfcgi/vwfcgi.sock",
    "PREFIX": "/tmp/nginx", "WORKERS": "2", "KEEPALIVE": "64", "MAX_BODY": "8m",
    "ERROR_LOG": "stderr", "ACCESS_LOG": "/dev/stdout", "ACCESS_LOG_FORMAT": "json", "NGINX_USER": "-",
    "DOCS_DIR": "/opt/vwfcgi/docs",
}


def tool(name: str) -> str:
    """A tool from the venv (hadolint, kubernetes-validate) or PATH; fails loudly when missing."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (run `make deploy-check`, which installs it)")
    return found


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run([str(c) for c in cmd], **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_nginx(env_values: dict) -> str:
    """nginx/render.sh's output for these values."""
    result = run([ROOT / "nginx/render.sh"], env={**os.environ, **env_values})
    assert result.returncode == 0, result.stderr
    return result.stdout
