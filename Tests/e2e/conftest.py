"""End-to-end fixtures: real nginx + the real vwfcgi binary + real vw (bin/vw).

Models are trained here with the vowpalwabbit package (fixed seeds); reference answers come
from the same package (`Workspace.predict`) and, for text/plain replies, from VW's own printed
output (`bin/vw -p`), so every expected value is VW's, never a re-implementation.

Environment:
  VWFCGI_BIN   the server binary (default: <repo>/.build/release/vwfcgi)
  VW_COMMAND   the vw command given to vwfcgi (default: <repo>/bin/vw); the reference answers
               always come from <repo>/bin/vw and the package
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import vowpalwabbit

ROOT = Path(__file__).resolve().parents[2]
VWFCGI_BIN = Path(os.environ.get("VWFCGI_BIN", ROOT / ".build" / "release" / "vwfcgi"))
REFERENCE_VW = str(ROOT / "bin" / "vw")
VW_COMMAND = os.environ.get("VW_COMMAND", REFERENCE_VW)
RENDER = ROOT / "nginx" / "render.sh"

HTTP_TIMEOUT = 30
START_TIMEOUT = 90  # six vw processes start on 2 cores
STOP_TIMEOUT = 30

# Limits the session stack runs with (small, so the limit tests stay cheap).
MAX_LINE_BYTES = 1000
MAX_BATCH = 500
MAX_BODY_BYTES = 256 * 1024  # vwfcgi's own limit
NGINX_MAX_BODY = "1m"  # nginx's client_max_body_size, above vwfcgi's
SHARDS = 2


# ---------------------------------------------------------------- example generators
def _num(rng: random.Random) -> float:
    return round(rng.uniform(-1, 1), 4)


def logistic_features(rng: random.Random) -> dict:
    """Features of one example for the logistic model: 3 namespaces, ~10 features."""
    a = {f"x{i}": _num(rng) for i in range(4) if rng.random() < 0.9}
    b = {f"y{i}": _num(rng) for i in range(3) if rng.random() < 0.9}
    c = {"color": rng.choice(["red", "green", "blue"]), "flag": rng.random() < 0.5, "off": False, "gone": None}
    c["w"] = _num(rng)
    return {"a": a, "b": b, "c": c}


def features_to_text(features: dict) -> str:
    """VW text for a features object, as SPEC §5 defines it (f:1.5, g=red, h; false/null left out)."""
    parts = []
    for ns, feats in features.items():
        items = []
        for name, value in feats.items():
            if value is None or value is False:
                continue
            if value is True:
                items.append(name)
            elif isinstance(value, str):
                items.append(f"{name}={value}")
            else:
                items.append(f"{name}:{value!r}")
        parts.append(f"|{ns} " + " ".join(items))
    return " ".join(parts)


def logistic_label(features: dict) -> int:
    a, b, c = features["a"], features["b"], features["c"]
    s = a.get("x0", 0) * b.get("y0", 0) * 3 + a.get("x1", 0) - b.get("y1", 0) + (0.7 if c["color"] == "red" else -0.3)
    s += 0.5 * a.get("x2", 0) * c["w"] + (0.4 if c["flag"] else 0)
    return 1 if s > 0.2 else -1


def oaa_features(rng: random.Random) -> dict:
    return {"f": {f"p{i}": _num(rng) for i in range(4)}, "g": {"k": rng.choice(["u", "v", "w"])}}


def oaa_label(features: dict) -> int:
    f = features["f"]
    scores = [f["p0"] + f["p1"], f["p2"] - f["p0"], f["p3"] - f["p1"] + (0.5 if features["g"]["k"] == "u" else 0)]
    return scores.index(max(scores)) + 1


def cb_example(rng: random.Random, actions: int = 4) -> dict:
    """One ADF example as a structured object: shared features + one namespace per action."""
    shared = {"U": {f"u{rng.randint(0, 4)}": True, "s": _num(rng)}}
    acts = [{"A": {f"a{k}": True, "q": _num(rng)}} for k in range(actions)]
    return {"shared": shared, "actions": acts}


def cb_lines(example: dict, tag: str | None = None) -> list[str]:
    shared = "shared " + (f"{tag}" if tag else "") + features_to_text(example["shared"])
    return [shared] + [features_to_text(a) for a in example["actions"]]


# ---------------------------------------------------------------- models
def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj) + "\n")


def model_version(model_dir: Path, name: str) -> str:
    """SPEC §4: first 12 hex of SHA-256 over the .vw bytes followed by the .json bytes."""
    digest = hashlib.sha256((model_dir / f"{name}.vw").read_bytes())
    side = model_dir / f"{name}.json"
    if side.exists():
        digest.update(side.read_bytes())
    return digest.hexdigest()[:12]


def train_small_logistic(path: Path, seed: int, examples: int = 400) -> None:
    """A small `-q ab` logistic model over `|a x:… |b y:…`; the seed changes its weights (and
    so its answers and its version)."""
    rng = random.Random(seed)
    ws = vowpalwabbit.Workspace(f"--loss_function logistic -q ab --quiet --random_seed {seed} -f {path}")
    for _ in range(examples):
        x, y = rng.random(), rng.random()
        ws.learn(f"{1 if x * (seed % 3 + 1) > y else -1} |a x:{x:.3f} |b y:{y:.3f}")
    ws.finish()


def train_models(model_dir: Path) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)

    rng = random.Random(11)
    ws = vowpalwabbit.Workspace(
        f"--loss_function logistic -q ab -q ac --random_seed 11 --quiet -f {model_dir / 'logistic.vw'}"
    )
    for _ in range(3000):
        feats = logistic_features(rng)
        ws.learn(f"{logistic_label(feats)} " + features_to_text(feats))
    ws.finish()
    _write_json(model_dir / "logistic.json", {"vw_args": ["--link", "logistic"]})

    rng = random.Random(12)
    ws = vowpalwabbit.Workspace(f"--oaa 3 --random_seed 12 --quiet -f {model_dir / 'oaa.vw'}")
    for _ in range(3000):
        feats = oaa_features(rng)
        ws.learn(f"{oaa_label(feats)} " + features_to_text(feats))
    ws.finish()

    rng = random.Random(13)
    ws = vowpalwabbit.Workspace(
        f"--cb_explore_adf --epsilon 0.2 -q UA --random_seed 13 --quiet -f {model_dir / 'cb.vw'}"
    )
    for _ in range(1500):
        ex = cb_example(rng)
        lines = cb_lines(ex)
        user = next(iter(k for k in ex["shared"]["U"] if k.startswith("u")))
        chosen = rng.randrange(4)
        cost = 0.0 if int(user[1:]) % 4 == chosen else 1.0
        lines[1 + chosen] = f"0:{cost}:0.25 " + lines[1 + chosen]
        ws.learn(lines)
    ws.finish()


class Reference:
    """VW's own answers, from the vowpalwabbit package (single-threaded: call from the test thread)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.args = {"logistic": ["--link", "logistic"], "oaa": [], "cb": []}
        self.ws = {
            name: vowpalwabbit.Workspace(" ".join(["-i", str(model_dir / f"{name}.vw"), "-t", "--quiet", *args]))
            for name, args in self.args.items()
        }

    def predict(self, model: str, example):
        """A float (logistic), an int (oaa), or {action: probability} (cb)."""
        result = self.ws[model].predict(example)
        if model == "cb":
            return {action: p for action, p in enumerate(result)}
        return result

    def printed(self, model: str, text: str) -> str:
        """Exactly what `vw -p` prints for `text` (the text/plain oracle)."""
        with tempfile.TemporaryDirectory(prefix="vwref-") as tmp:
            data, out = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
            data.write_text(text)
            subprocess.run(
                [REFERENCE_VW, "-i", str(self.model_dir / f"{model}.vw"), "-t", "-d", str(data), "-p", str(out),
                 "--quiet", *self.args[model]],
                check=True, timeout=60, stdin=subprocess.DEVNULL,
            )
            return out.read_text()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models")
    train_models(path)
    return path


@pytest.fixture(scope="session")
def reference(model_dir) -> Reference:
    return Reference(model_dir)


# ---------------------------------------------------------------- comparisons
def close(got, want) -> bool:
    """VW prints 6 decimals (%f) or 6 significant digits: compare at that precision."""
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return False
    return abs(got - want) <= 1e-6 + 1e-6 * abs(want)


def assert_scalar_predictions(got: list, want: list) -> None:
    assert len(got) == len(want), f"{len(got)} predictions for {len(want)} instances"
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if not close(g, w)]
    assert not bad, f"{len(bad)} predictions differ from VW's, first: (index, got, want) {bad[:5]}"


def action_probabilities(p) -> dict:
    """Server's [{"action": a, "probability": p}, ...] as {a: p}, checking its shape."""
    assert isinstance(p, list), f"expected an action list, got {p!r}"
    out = {}
    for item in p:
        assert set(item) == {"action", "probability"}, f"unexpected keys in {item!r}"
        assert isinstance(item["action"], int) and not isinstance(item["action"], bool)
        out[item["action"]] = item["probability"]
    return out


def assert_cb_prediction(got, want: dict) -> None:
    actions = action_probabilities(got)
    assert set(actions) == set(want), f"actions {sorted(actions)} != {sorted(want)}"
    for a, p in want.items():
        assert close(actions[a], p), f"action {a}: probability {actions[a]} != {p}"
    # VW's printed order: the chosen action first (highest probability).
    probs = [item["probability"] for item in got]
    assert probs[0] == max(probs), f"first action is not the most probable one: {got}"


def assert_json_error(resp: requests.Response, status: int, *, contains: str | None = None) -> dict:
    assert resp.status_code == status, f"want {status}, got {resp.status_code}: {resp.text[:300]!r}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"error Content-Type is {ctype!r}: {resp.text[:300]!r}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    if contains is not None:
        assert contains in body["error"], f"{contains!r} not in error message {body['error']!r}"
    return body


# ---------------------------------------------------------------- waiting
def wait_until(predicate, bound: float, step: float = 0.01):
    """Polls `predicate` until it returns something truthy or `bound` seconds pass (a liveness
    bound, not a performance assertion); returns its last value."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


# ---------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a live process, or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def descendants(root: int) -> set[int]:
    """All live descendants of `root` (by scanning /proc, no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st:
                children.setdefault(st[1], []).append(int(entry))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(none)"


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_pytest() -> None:
    """In the child before exec: SIGTERM it when pytest dies, so a killed run leaves no server behind."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Stack:
    """nginx + vwfcgi (+ its vw children) on a free port and a private unix socket.

    `Stack(dir).start()` returns once /healthz and /readyz answer 200 within `start_timeout`
    seconds; `start(ready=False)` once /healthz does (for models meant not to load).
    `stop()` returns a list of problems (vwfcgi's exit code, processes left behind).
    Stacks a test forgot to stop are stopped at the end of the session.
    """

    live: set["Stack"] = set()
    dirs: list[Path] = []

    def __init__(self, model_dir: Path, *, shards: int = 1, extra_args: tuple[str, ...] = (),
                 max_body: str = "8m", start_timeout: float = START_TIMEOUT, state_dir: Path | None = None,
                 instance_id: str = "e2e"):
        self.model_dir = Path(model_dir)
        self.shards = shards
        self.extra_args = list(extra_args)
        self.max_body = max_body
        self.start_timeout = start_timeout
        self.wait_for_ready = True
        # Short path under /tmp: a unix socket path must stay under 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="vwfcgi-e2e-", dir="/tmp"))
        Stack.dirs.append(self.dir)
        self.socket_path = self.dir / "vwfcgi.sock"
        # The learning loop's logs (SPEC §8.4); a test that restarts a server passes the same one.
        self.state_dir = Path(state_dir) if state_dir else self.dir / "state"
        self.instance_id = instance_id
        self.prefix = self.dir / "nginx"
        self.conf = self.dir / "nginx.conf"
        self.vwfcgi_log = self.dir / "vwfcgi.log"
        self.nginx_log = self.dir / "nginx.out"
        self.port = 0
        self.vwfcgi: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.vw_pids: set[int] = set()
        self.session = requests.Session()

    # -- life cycle
    def start(self, ready: bool = True) -> "Stack":
        self.wait_for_ready = ready
        if not VWFCGI_BIN.is_file() or not os.access(VWFCGI_BIN, os.X_OK):
            pytest.fail(f"no vwfcgi binary at {VWFCGI_BIN} (run `make build`, or set VWFCGI_BIN)")
        self.port = free_port()
        env = dict(os.environ, PREFIX=str(self.prefix), SOCKET=str(self.socket_path), PORT=str(self.port),
                   MAX_BODY=self.max_body, LISTEN_ADDR="127.0.0.1")
        rendered = subprocess.run([str(RENDER)], env=env, capture_output=True, text=True, timeout=30)
        assert rendered.returncode == 0, f"render.sh failed: {rendered.stderr}"
        self.conf.write_text(rendered.stdout)
        check = subprocess.run(["nginx", "-e", "stderr", "-t", "-q", "-p", str(self.prefix), "-c", str(self.conf)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t rejects the rendered config: {check.stderr}"

        command = [str(VWFCGI_BIN), "serve", "--models", str(self.model_dir), "--socket", str(self.socket_path),
                   "--vw-command", VW_COMMAND, "--shards", str(self.shards), "--state-dir", str(self.state_dir),
                   "--instance-id", self.instance_id, *self.extra_args]
        Stack.live.add(self)
        with open(self.vwfcgi_log, "wb") as log:
            self.vwfcgi = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           preexec_fn=_die_with_pytest)
        with open(self.nginx_log, "wb") as log:
            self.nginx = subprocess.Popen(
                ["nginx", "-e", "stderr", "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_pytest)
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise
        self.vw_pids = descendants(self.vwfcgi.pid)
        return self

    def _wait_ready(self) -> None:
        ready = self.wait_for_ready
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in (("vwfcgi", self.vwfcgi), ("nginx", self.nginx)):
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode} during start-up\n" + self.logs())
            try:
                r = self.session.get(self.url("/healthz"), timeout=5)
                last = f"{r.status_code} {r.text[:200]!r}"
                if r.status_code == 200 and not ready:
                    return
                if r.status_code == 200:
                    r = self.session.get(self.url("/readyz"), timeout=5)
                    last = f"readyz {r.status_code} {r.text[:200]!r}"
                    if r.status_code == 200:
                        return
            except requests.RequestException as error:
                last = repr(error)
            time.sleep(0.2)
        raise AssertionError(f"stack not ready within {self.start_timeout}s (last: {last})\n" + self.logs())

    def logs(self) -> str:
        return (f"---- vwfcgi log ----\n{tail(self.vwfcgi_log)}\n"
                f"---- nginx error.log ----\n{tail(self.prefix / 'error.log')}\n{tail(self.nginx_log, 10)}")

    def stop(self, check: bool = True) -> list[str]:
        """Stops nginx, then vwfcgi (SIGTERM, graceful). Returns what went wrong (empty if nothing)."""
        problems: list[str] = []
        Stack.live.discard(self)
        self.session.close()
        watched = set(self.vw_pids)
        if self.vwfcgi and self.vwfcgi.poll() is None:
            watched |= descendants(self.vwfcgi.pid)
        watched = {pid: cmdline(pid) for pid in watched}
        if self.nginx:
            _terminate(self.nginx, signal.SIGQUIT, 15)
        if self.vwfcgi:
            code = _terminate(self.vwfcgi, signal.SIGTERM, STOP_TIMEOUT)
            if code != 0:
                problems.append(f"vwfcgi exited with {code} on SIGTERM (want 0)")
        # vw children must be gone: they are vwfcgi's to stop (pipes closed, parent-death signal).
        deadline = time.monotonic() + 10
        left = {}
        while time.monotonic() < deadline:
            left = {pid: cmd for pid, cmd in watched.items() if alive(pid) and cmdline(pid) == cmd}
            if not left:
                break
            time.sleep(0.1)
        if left:
            problems.append(f"processes of vwfcgi still running after it stopped: {left}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if check and problems:
            problems.append(self.logs())
        return problems

    # -- HTTP
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.get(self.url(path), **kw)

    def post(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.post(self.url(path), **kw)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.url(path), **kw)

    def predict(self, model: str, instances: list, **kw) -> requests.Response:
        return self.post(f"/v1/models/{model}:predict", json={"instances": instances}, **kw)


def _terminate(proc: subprocess.Popen, sig: int, timeout: float) -> int:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return -9
    return proc.returncode


def _stop_forgotten_stacks() -> list[str]:
    names = []
    for s in list(Stack.live):
        names.append(str(s.dir))
        s.stop(check=False)
    return names


atexit.register(_stop_forgotten_stacks)


@pytest.fixture(scope="session", autouse=True)
def no_forgotten_stacks(request):
    """A stack a test did not stop (e.g. it failed before its stop()) is stopped here; the stacks'
    directories (logs, nginx prefix) are removed when every test passed."""
    yield
    _stop_forgotten_stacks()
    if request.session.testsfailed == 0:
        for path in Stack.dirs:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(model_dir):
    """One stack serving all three models (logistic, oaa, cb) with small limits."""
    s = Stack(model_dir, shards=SHARDS, max_body=NGINX_MAX_BODY,
              extra_args=("--max-line-bytes", str(MAX_LINE_BYTES), "--max-batch", str(MAX_BATCH),
                          "--max-body-bytes", str(MAX_BODY_BYTES))).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


# A few examples whose answers are known: sent after every error to show the server is unharmed.
@pytest.fixture(scope="session")
def canary(reference):
    rng = random.Random(99)
    lines = [" " + features_to_text(logistic_features(rng)) for _ in range(5)]
    want = [reference.predict("logistic", line) for line in lines]
    return lines, want


@pytest.fixture
def unharmed(stack, canary):
    """Call after an error: a correct prediction still comes back."""
    def check():
        lines, want = canary
        r = stack.predict("logistic", lines)
        assert r.status_code == 200, f"server harmed: {r.status_code} {r.text[:300]!r}"
        assert_scalar_predictions(r.json()["predictions"], want)
    return check
