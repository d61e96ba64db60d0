"""vwfcgi benchmark: one run, every row on the same machine, ratios not just numbers.

    make bench                      (or: .venv/bin/python bench/run.py [--duration S] [--warmup S])

Rows (see bench/README.md):
  pipe        one `bin/vw` process fed over a pipe by a writer thread, read by the main thread:
              the limit in examples/s
  vwfcgi      wrk -> nginx -> FastCGI -> vwfcgi -> vw; 1 and 100 examples per request, JSON and
              text/plain, c = 1, 8, 64; the same bodies as Open Inference Protocol (KServe V2)
              infer requests ("v2"); the ADF model (1 example, JSON) at c = 8, 64
  gunicorn    Flask under gunicorn -w 2, one vw child per worker over pipes (the original design)
  fastapi     FastAPI under uvicorn -w 2, pylibvw in-process
Every server's answers to every request body wrk will send are checked against the vowpalwabbit
package's predictions (1e-5) before it is timed; a mismatch aborts the run.

Writes bench/out/results.json, bench/out/plot.png, raw wrk output under bench/out/wrk/ and the
servers' logs under bench/out/run/.
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
PY = os.path.join(ROOT, ".venv", "bin", "python")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
VW = os.path.join(ROOT, "bin", "vw")
TOLERANCE = 1e-5
OTHER_LOAD_WARN = 0.10  # a row where processes outside the benchmark used more CPU is flagged

N_SINGLE_BODIES = 500  # distinct 1-example bodies wrk cycles through
N_BATCH_BODIES = 50    # distinct 100-example bodies
BATCH = 100
N_ADF_BODIES = 200


class BenchError(Exception):
    pass


def say(msg: str):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------------------------
LIVE: list = []  # every process we started and have not stopped yet


class Proc:
    """A server process we started, in its own session (process group = its pid)."""

    def __init__(self, name, argv, log_path, env=None, cwd=ROOT, stop_signal=signal.SIGTERM):
        self.name = name
        self.stop_signal = stop_signal
        self.log = open(log_path, "ab")
        self.log_path = log_path
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.extra_pids: list[int] = []  # processes outside its group to check after it stops
        LIVE.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 15.0):
        if self in LIVE:
            LIVE.remove(self)
        if self.alive():
            try:
                os.kill(self.pid, self.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                say(f"{self.name} (pid {self.pid}) did not stop within {grace:.0f}s: killing it")
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        # Stragglers in the group we created for it (uvicorn/gunicorn workers, nginx workers).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # Processes it started in their own groups (vwfcgi's vw shards): they exit when the
        # pipes close; a survivor is a finding, reported and then killed by pid.
        deadline = time.time() + 5
        for pid in self.extra_pids:
            while pid_alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                say(f"WARNING: pid {pid} started by {self.name} outlived it by 5 s: killing it")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.log.close()


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def stop_all():
    for proc in list(reversed(LIVE)):
        try:
            proc.stop()
        except Exception as error:  # keep stopping the others
            say(f"stopping {proc.name}: {error}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(procs: list, port: int, path: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        for proc in procs:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited during start-up (status {proc.popen.returncode}); "
                                 f"see {proc.log_path}:\n{tail(proc.log_path)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return
            last = f"HTTP {resp.status}"
        except OSError as error:
            last = str(error)
        time.sleep(0.1)
    raise BenchError(f"GET {path} did not answer 200 within {timeout:.0f}s (last: {last}); "
                     + "; ".join(f"{p.name} log {p.log_path}:\n{tail(p.log_path)}" for p in procs))


def tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_io(pid: int) -> dict:
    """/proc/PID/io of one process (all its threads): rchar, wchar, write_bytes, ... as ints."""
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f if ":" in line)}


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    f = _stat_fields(pid)
    return int(f[11]) + int(f[12])


def _stat_fields(pid) -> list:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_cpu_jiffies() -> int:
    """CPU time (user + system, jiffies) of this process, its reaped children and every live
    descendant: what the benchmark itself (servers, vw, nginx, wrk) has used."""
    parent = {}
    times = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = _stat_fields(name)
        except (OSError, IndexError):
            continue
        pid = int(name)
        parent[pid] = int(f[1])
        times[pid] = int(f[11]) + int(f[12])  # utime, stime
    me = os.getpid()
    mine = _stat_fields(me)
    total = int(mine[11]) + int(mine[12]) + int(mine[13]) + int(mine[14])  # + cutime, cstime
    for pid, t in times.items():
        p, seen = parent.get(pid), 0
        while p and p != me and p in parent and seen < 64:
            p, seen = parent[p], seen + 1
        if p == me and pid != me:
            total += t
    return total


def system_jiffies() -> tuple:
    """(busy user+nice+system, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[0] + fields[1] + fields[2], sum(fields[:8])


class OtherLoad:
    """Share of the machine's CPU time used by processes outside the benchmark during a row."""

    def __enter__(self):
        self.busy0, self.total0 = system_jiffies()
        self.tree0 = tree_cpu_jiffies()
        return self

    def __exit__(self, *exc):
        busy1, total1 = system_jiffies()
        tree1 = tree_cpu_jiffies()
        other = (busy1 - self.busy0) - (tree1 - self.tree0)
        self.share = max(0.0, other / max(1, total1 - self.total0))


class RssSampler:
    """Samples VmRSS of one pid (not its children) every 50 ms while running."""

    def __init__(self, pid: int):
        self.pid = pid
        self.max_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.max_kb = max(self.max_kb, rss_kb(self.pid))
                self.samples += 1
            except OSError:
                return
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- data ------------------------------------------------------------------------------------
class Data:
    def __init__(self, out: str):
        d = os.path.join(out, "data")
        with open(os.path.join(d, "logistic_requests.txt")) as f:
            self.lines = f.read().splitlines()
        with open(os.path.join(d, "logistic_expected.json")) as f:
            self.expected = json.load(f)
        with open(os.path.join(d, "adf_requests.txt")) as f:
            self.adf = [b for b in f.read().split("\n\n") if b.strip()]
        with open(os.path.join(d, "adf_expected.json")) as f:
            self.adf_expected = [{a: p for a, p in e} for e in json.load(f)]
        with open(os.path.join(d, "loop_requests.json")) as f:
            self.loop = json.load(f)
        with open(os.path.join(d, "loop_expected.json")) as f:
            self.loop_expected = [{a: p for a, p in e} for e in json.load(f)]
        with open(os.path.join(d, "personalizer_requests.json")) as f:
            self.personalizer = json.load(f)
        with open(os.path.join(d, "personalizer_expected.json")) as f:
            self.personalizer_expected = [{a: p for a, p in e} for e in json.load(f)]
        self.models = os.path.join(out, "models")
        with open(os.path.join(self.models, "logistic.json")) as f:
            self.logistic_args = json.load(f)["vw_args"]
        if len(self.lines) < N_BATCH_BODIES * BATCH or len(self.adf) < N_ADF_BODIES:
            raise BenchError("the request set is smaller than the benchmark needs: rerun make_data.py")


class RequestSet:
    """The bodies of one request type, with the predictions VW gives for each."""

    def __init__(self, model, kind, per_request, fmt, bodies, expected, verb="predict"):
        self.model = model            # logistic | adf | loop
        self.verb = verb              # predict | rank | reward (/v1/models/<model>:<verb>) | infer (/v2/models/<model>/infer)
        self.kind = kind              # label, e.g. "1 ex json"
        self.per_request = per_request
        self.fmt = fmt                # json | text | v2 (an Open Inference Protocol JSON body)
        self.bodies = bodies          # list of str
        self.expected = expected      # list (per body) of lists of expected predictions
        self.content_type = "text/plain" if fmt == "text" else "application/json"


def request_sets(data: Data) -> dict:
    sets = {}
    for fmt in ("json", "text"):
        def body(lines):
            if fmt == "json":
                return json.dumps({"instances": lines})
            return "".join(line + "\n" for line in lines)
        sets[("logistic", 1, fmt)] = RequestSet(
            "logistic", f"1 ex {fmt}", 1, fmt,
            [body([data.lines[i]]) for i in range(N_SINGLE_BODIES)],
            [[data.expected[i]] for i in range(N_SINGLE_BODIES)])
        sets[("logistic", BATCH, fmt)] = RequestSet(
            "logistic", f"{BATCH} ex {fmt}", BATCH, fmt,
            [body(data.lines[k * BATCH:(k + 1) * BATCH]) for k in range(N_BATCH_BODIES)],
            [data.expected[k * BATCH:(k + 1) * BATCH] for k in range(N_BATCH_BODIES)])
    # The same examples as Open Inference Protocol (KServe V2) requests: one BYTES tensor.
    def infer_body(lines):
        return json.dumps({"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [len(lines)], "data": lines}]})
    sets[("logistic", 1, "v2")] = RequestSet(
        "logistic", "1 ex v2", 1, "v2", [infer_body([data.lines[i]]) for i in range(N_SINGLE_BODIES)],
        [[data.expected[i]] for i in range(N_SINGLE_BODIES)], verb="infer")
    sets[("logistic", BATCH, "v2")] = RequestSet(
        "logistic", f"{BATCH} ex v2", BATCH, "v2",
        [infer_body(data.lines[k * BATCH:(k + 1) * BATCH]) for k in range(N_BATCH_BODIES)],
        [data.expected[k * BATCH:(k + 1) * BATCH] for k in range(N_BATCH_BODIES)], verb="infer")
    sets[("adf", 1, "json")] = RequestSet(
        "adf", "ADF 1 ex json", 1, "json",
        [json.dumps({"instances": [data.adf[i]]}) for i in range(N_ADF_BODIES)],
        [[data.adf_expected[i]] for i in range(N_ADF_BODIES)])
    # The learning loop (SPEC §8.2, §8.3): the same VW JSON model predicted, ranked (the decision
    # fsynced before the answer) and rewarded (fsynced before the 202). wrk cycles through the
    # bodies, so event ids repeat: each request is logged all the same.
    n = len(data.loop)
    sets[("loop", 1, "json")] = RequestSet(
        "loop", "loop predict json", 1, "json",
        [json.dumps({"instances": [data.loop[i]]}) for i in range(n)], [[data.loop_expected[i]] for i in range(n)])
    sets[("loop", "rank")] = RequestSet(
        "loop", "loop rank", 1, "json",
        [json.dumps({"event_id": f"bench-{i}", "context": data.loop[i]}) for i in range(n)],
        [[data.loop_expected[i]] for i in range(n)], verb="rank")
    # Personalizer's rank (SPEC §9) on the same model: the same decision path behind the SDK's shapes.
    sets[("loop", "personalizer")] = RequestSet(
        "loop", "personalizer rank", 1, "json",
        [json.dumps(dict(body, eventId=f"bench-pz-{i}")) for i, body in enumerate(data.personalizer)],
        [[data.personalizer_expected[i]] for i in range(len(data.personalizer))], verb="personalizer")
    sets[("loop", "reward")] = RequestSet(
        "loop", "loop reward", 1, "json",
        [json.dumps({"event_id": f"bench-{i}", "reward": 1.0}) for i in range(n)], [[] for _ in range(n)], verb="reward")
    return sets


CHECK_502: list = []  # requests of the correctness checks answered 502 (then retried)


# --- correctness -----------------------------------------------------------------------------
def parse_prediction(model: str, value):
    """A prediction as the server sent it -> a float, or {action: probability} for ADF."""
    if model in ("adf", "loop"):
        if isinstance(value, list):
            return {item["action"]: item["probability"] for item in value}
        return {int(a): float(p) for a, p in (pair.split(":") for pair in value.split(","))}
    return float(value)


def close_enough(model: str, got, want) -> bool:
    if model in ("adf", "loop"):
        return got.keys() == want.keys() and all(abs(got[a] - want[a]) <= TOLERANCE for a in want)
    return abs(got - want) <= TOLERANCE


def check_server(server: str, port: int, rset: RequestSet, path: str):
    """Sends every body wrk will send; every prediction must match VW's to 1e-5."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for b, (body, expected) in enumerate(zip(rset.bodies, rset.expected)):
            where = f"{server}, {rset.kind}, body {b}"
            for attempt in (1, 2):
                conn.request("POST", path, body=body.encode(), headers={"Content-Type": rset.content_type})
                resp = conn.getresponse()
                raw = resp.read().decode("utf-8", "replace")
                if resp.status != 502 or attempt == 2:
                    break
                # A dropped upstream connection is an error worth reporting, not a wrong answer:
                # counted, retried once; a wrong prediction always aborts.
                CHECK_502.append(where)
                say(f"WARNING: {where}: HTTP 502 {raw.strip()[:100]} (retrying once)")
            if rset.verb == "reward":
                if resp.status != 202 or json.loads(raw) != {"accepted": 1}:
                    raise BenchError(f"MISMATCH: {where}: HTTP {resp.status}: {raw[:300]}")
                continue
            if rset.verb == "personalizer":
                if resp.status != 201:
                    raise BenchError(f"MISMATCH: {where}: HTTP {resp.status}: {raw[:300]}")
                # Action ids are a<k>: k is the action's index in VW's PMF.
                got = [[{"action": int(r["id"][1:]), "probability": r["probability"]} for r in json.loads(raw)["ranking"]]]
            elif resp.status != 200:
                raise BenchError(f"MISMATCH: {where}: HTTP {resp.status}: {raw[:300]}")
            elif rset.verb == "rank":
                got = [json.loads(raw)["ranking"]]
            elif rset.verb == "infer":
                got = json.loads(raw)["outputs"][0]["data"]
            elif rset.fmt == "json":
                got = json.loads(raw)["predictions"]
            else:
                got = [line for line in raw.split("\n") if line.strip()]
            if len(got) != len(expected):
                raise BenchError(f"MISMATCH: {where}: {len(got)} predictions for "
                                 f"{len(expected)} examples: {raw[:300]}")
            for i, (g, want) in enumerate(zip(got, expected)):
                value = parse_prediction(rset.model, g)
                if not close_enough(rset.model, value, want):
                    raise BenchError(f"MISMATCH: {where}, instance {i}: server said {g!r}, "
                                     f"VW (vowpalwabbit package) says {want!r}")
    finally:
        conn.close()


# --- the limit: one vw over a pipe ---------------------------------------------------------
def pipe_limit(name, model, vw_args, examples, expected, model_kind, repeats, check_count):
    """Examples/s of one vw process: a writer thread writes, this thread reads."""
    argv = [VW, "-i", model, "-t", "-d", "/dev/stdin", "-p", "/dev/stdout", "--quiet"] + vw_args
    sep = "\n\n" if model_kind == "adf" else "\n"
    lines_per_answer = 2 if model_kind == "adf" else 1  # ADF: a blank line after each example
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    LIVE_PIPES.append(proc)
    try:
        out = proc.stdout.fileno()

        def exchange(payload: bytes, answers: int, keep: bool):
            chunks = []
            error = []

            def writer():
                try:
                    view = memoryview(payload)
                    for i in range(0, len(view), 1 << 16):
                        proc.stdin.write(view[i:i + (1 << 16)])
                except OSError as e:
                    error.append(e)

            t = threading.Thread(target=writer, daemon=True)
            start = time.perf_counter()
            t.start()
            need = answers * lines_per_answer
            seen = 0
            while seen < need:
                chunk = os.read(out, 1 << 20)
                if not chunk:
                    raise BenchError(f"{name}: vw closed its output after {seen} lines "
                                     f"(wanted {need}); exit status {proc.poll()}")
                seen += chunk.count(b"\n")
                if keep:
                    chunks.append(chunk)
            elapsed = time.perf_counter() - start
            t.join()
            if error:
                raise BenchError(f"{name}: writing to vw failed: {error[0]}")
            return elapsed, b"".join(chunks)

        # Correctness first (and warm-up): the first check_count examples.
        payload = (sep.join(examples[:check_count]) + sep).encode()
        _, raw = exchange(payload, check_count, keep=True)
        got = [line for line in raw.decode().split("\n") if line.strip()]
        for i, (g, want) in enumerate(zip(got, expected[:check_count])):
            if not close_enough(model_kind, parse_prediction(model_kind, g), want):
                raise BenchError(f"MISMATCH: {name}, example {i}: vw over the pipe said {g!r}, "
                                 f"VW (vowpalwabbit package) says {want!r}")
        payload = (sep.join(examples) + sep).encode() * repeats
        n = len(examples) * repeats
        elapsed, _ = exchange(payload, n, keep=False)
        return {"examples": n, "seconds": elapsed, "examples_per_s": n / elapsed}
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        LIVE_PIPES.remove(proc)


LIVE_PIPES: list = []


# --- wrk -------------------------------------------------------------------------------------
LUA_TEMPLATE = r"""
-- generated by bench/run.py: cycles through pre-formatted POST requests
local bodies = {
%(bodies)s
}
local requests = {}
local i = 0
function init(args)
  local headers = { ["Content-Type"] = "%(content_type)s" }
  for k, b in ipairs(bodies) do
    requests[k] = wrk.format("POST", nil, headers, b)
  end
  bodies = nil
end
function request()
  i = i %% #requests + 1
  return requests[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,' ..
    '"mean":%%.1f,"max":%%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""


HEALTHZ_LUA = LUA_TEMPLATE.replace('wrk.format("POST", nil, headers, b)', 'wrk.format("GET", "/healthz")')


def healthz_row(server: "Server", connections: int, args, out: str, rows: list):
    """`GET /healthz` through the same nginx and FastCGI front (no engine): the ceiling a
    single-example prediction can approach."""
    rset = RequestSet("healthz", "GET /healthz", 1, "get", ["x"], [[]], verb="healthz")
    script = os.path.join(out, "wrk", "healthz.lua")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write(HEALTHZ_LUA % {"bodies": "[====[\nx]====],", "content_type": "text/plain"})
    return measure(server, rset, connections, args, out, rows, script=script, url_path="/healthz")


def lua_script(rset: RequestSet, path: str) -> str:
    level = "=" * 4
    items = []
    for body in rset.bodies:
        if f"]{level}]" in body:
            raise BenchError("a request body contains the Lua long-string terminator")
        # A newline right after the opening bracket is dropped by Lua: add one on purpose.
        items.append(f"[{level}[\n{body}]{level}],")
    with open(path, "w") as f:
        f.write(LUA_TEMPLATE % {"bodies": "\n".join(items), "content_type": rset.content_type})
    return path


def run_wrk(url: str, script: str, connections: int, seconds: float, raw_path: str):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
            "-s", script, url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    LIVE_PIPES.append(proc)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        LIVE_PIPES.remove(proc)
    if raw_path:
        with open(raw_path, "w") as f:
            f.write(" ".join(argv) + "\n" + out)
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise BenchError(f"wrk gave no result (exit {proc.returncode}):\n{out[-2000:]}")


# --- servers ---------------------------------------------------------------------------------
class Server:
    name = ""
    port = 0

    def path(self, model: str, verb: str = "predict") -> str:
        if verb == "infer":
            return f"/v2/models/{model}/infer"
        if verb == "personalizer":
            return f"/loops/{model}/personalizer/v1.0/rank"
        return f"/v1/models/{model}:{verb}"


class VwfcgiStack(Server):
    """vwfcgi through nginx with every model on the vw pool (`--engine vw`: the default, auto, would
    answer the logistic model in-process; these rows measure the pool)."""
    name = "vwfcgi"
    extra_args: tuple = ("--engine", "vw")

    def __init__(self, data: Data, run_dir: str, shards: int, models: str = ""):
        self.port = free_port()
        self.state_dir = os.path.join(run_dir, "state")
        self.sock_dir = tempfile.mkdtemp(prefix="vwfcgi-bench-")  # short path for the socket
        self.socket = os.path.join(self.sock_dir, "vwfcgi.sock")
        binary = os.environ.get("VWFCGI_BIN", os.path.join(ROOT, ".build", "release", "vwfcgi"))
        if not os.access(binary, os.X_OK):
            raise BenchError(f"no vwfcgi binary at {binary} (run `make build`)")
        self.vwfcgi = Proc("vwfcgi", [binary, "serve", "--models", models or data.models, "--socket", self.socket,
                                      "--vw-command", VW, "--shards", str(shards),
                                      "--state-dir", self.state_dir, "--instance-id", "bench", *self.extra_args],
                           os.path.join(run_dir, f"{self.name.replace(' ', '-')}.log"))
        self.nginx = None
        try:
            self._start_front(run_dir)
        except BaseException:
            # What this stack started stops here: a caller that catches the error (or a script importing
            # this module, outside run.py's own exit path) must not inherit running servers.
            self.stop()
            raise

    def _start_front(self, run_dir: str):
        """nginx in front of the started vwfcgi, then waits until both answer and reads the models."""
        prefix = os.path.join(run_dir, "nginx" if self.name == VwfcgiStack.name else "nginx-native")
        self.error_log = os.path.join(prefix, "error.log")
        env = dict(os.environ, PREFIX=prefix, SOCKET=self.socket, PORT=str(self.port),
                   ACCESS_LOG="off", ERROR_LOG=self.error_log)
        conf = subprocess.run([os.path.join(ROOT, "nginx", "render.sh")], env=env,
                              capture_output=True, text=True)
        if conf.returncode != 0:
            raise BenchError(f"nginx/render.sh failed: {conf.stderr}")
        self.conf = os.path.join(prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf.stdout)
        deadline = time.time() + 30
        while not os.path.exists(self.socket) and time.time() < deadline and self.vwfcgi.alive():
            time.sleep(0.05)
        self.nginx = Proc("nginx", ["nginx", "-e", "stderr", "-p", prefix, "-c", self.conf,
                                    "-g", "daemon off;"],
                          os.path.join(run_dir, "nginx.log"), stop_signal=signal.SIGQUIT)
        wait_http([self.vwfcgi, self.nginx], self.port, "/readyz")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/v1/models")
        self.models = json.loads(conn.getresponse().read())["models"]
        conn.close()
        self.vwfcgi.extra_pids = [s["pid"] for m in self.models for s in m["shards"]]

    def error_log_offset(self) -> int:
        try:
            return os.path.getsize(self.error_log)
        except OSError:
            return 0

    def error_log_summary(self, offset: int) -> dict:
        """nginx error.log lines written since `offset`, counted by message."""
        counts: dict = {}
        try:
            with open(self.error_log, errors="replace") as f:
                f.seek(offset)
                for line in f:
                    m = re.search(r"\[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client:|$)", line.rstrip())
                    key = f"[{m.group(1)}] {m.group(2)}" if m else line.strip()
                    counts[key] = counts.get(key, 0) + 1
        except OSError:
            pass
        return counts

    def metrics(self) -> str:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            return text
        except OSError as error:
            return f"# metrics unavailable: {error}"

    def stop(self):
        if self.nginx is not None:
            self.nginx.stop()
        self.vwfcgi.stop(grace=30)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


class VwfcgiNativeStack(VwfcgiStack):
    """The same stack with the in-process native scorer (SPEC §11): `--engine auto` (the default) with the
    default shadow check (one request in 1,000 also answered by vw)."""
    name = "vwfcgi native"
    extra_args = ("--engine", "auto")


class GunicornFlask(Server):
    name = "gunicorn+flask -w2"

    def __init__(self, data: Data, run_dir: str):
        self.port = free_port()
        env = dict(os.environ, BENCH_MODEL=os.path.join(data.models, "logistic.vw"),
                   BENCH_VW_ARGS=json.dumps(data.logistic_args), BENCH_VW=VW)
        self.proc = Proc(self.name, [os.path.join(VENV_BIN, "gunicorn"), "-w", "2", "-b",
                                     f"127.0.0.1:{self.port}", "--chdir",
                                     os.path.join(BENCH, "servers"), "--log-level", "warning",
                                     "flask_app:app"],
                         os.path.join(run_dir, "gunicorn.log"), env=env)
        wait_ready_post(self.proc, self.port, self.path("logistic"), data)

    def stop(self):
        self.proc.stop()


class UvicornFastAPI(Server):
    name = "fastapi+uvicorn -w2"

    def __init__(self, data: Data, run_dir: str):
        self.port = free_port()
        env = dict(os.environ, BENCH_MODEL=os.path.join(data.models, "logistic.vw"),
                   BENCH_VW_ARGS=json.dumps(data.logistic_args))
        self.proc = Proc(self.name, [os.path.join(VENV_BIN, "uvicorn"), "--workers", "2",
                                     "--host", "127.0.0.1", "--port", str(self.port),
                                     "--app-dir", os.path.join(BENCH, "servers"),
                                     "--log-level", "warning", "--no-access-log",
                                     "fastapi_app:app"],
                         os.path.join(run_dir, "uvicorn.log"), env=env)
        wait_ready_post(self.proc, self.port, self.path("logistic"), data)

    def stop(self):
        self.proc.stop()


def wait_ready_post(proc: Proc, port: int, path: str, data: Data, timeout: float = 30.0):
    """Waits until both workers are likely up: 20 answered predictions in a row."""
    deadline = time.time() + timeout
    body = json.dumps({"instances": [data.lines[0]]}).encode()
    ok = 0
    last = None
    while time.time() < deadline and ok < 20:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited during start-up; see {proc.log_path}:\n"
                             f"{tail(proc.log_path)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            ok = ok + 1 if resp.status == 200 else 0
            last = f"HTTP {resp.status}"
        except OSError as error:
            ok = 0
            last = str(error)
            time.sleep(0.1)
    if ok < 20:
        raise BenchError(f"{proc.name} is not answering predictions (last: {last}); "
                         f"see {proc.log_path}:\n{tail(proc.log_path)}")


# --- orphan flood (issue 18) -----------------------------------------------------------------
FLOOD_LOOP = {"update_interval": "30s", "min_events": 100, "reward_wait": "10s", "default_reward": 0.0}
FLOOD_WORKERS = 8           # connections sending the batches (open loop: each batch has a due time)
HEALTHZ_EVERY = 0.05        # s between two GET /healthz of the prober
RSS_GROWTH_LIMIT_MB = 10.0  # per 100,000 orphans: more is a finding (issue 18)
WRITE_PER_REWARD_LIMIT = 500.0  # bytes written (write_bytes) per reward: more is a finding


def flood_models(data: Data, run_dir: str) -> str:
    """A models directory with the bench's loop model and a `"loop"` object (learning on): the
    model every orphan reward is sent to. loop.vw is copied, not changed."""
    models = os.path.join(run_dir, "flood-models")
    os.makedirs(models, exist_ok=True)
    shutil.copyfile(os.path.join(data.models, "loop.vw"), os.path.join(models, "loop.vw"))
    with open(os.path.join(models, "loop.json"), "w") as f:
        json.dump({"input": "vw_json", "loop": FLOOD_LOOP}, f)
        f.write("\n")
    return models


def state_sizes(model_state: str) -> dict:
    """Bytes under <state>/<name>/: the event log, joined files, the join journal and snapshot."""
    sizes = {"log": 0, "log_files": 0, "joined": 0, "join-journal.jsonl": 0, "join-state.json": 0,
             "other": 0, "total": 0}
    for dirpath, _, files in os.walk(model_state):
        top = os.path.relpath(dirpath, model_state).split(os.sep)[0]
        for name in files:
            try:
                size = os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # rotated or replaced while we walked
            sizes["total"] += size
            if top == "log":
                sizes["log"] += size
                sizes["log_files"] += 1
            elif top == "joined":
                sizes["joined"] += size
            elif top == "." and name in ("join-journal.jsonl", "join-state.json"):
                sizes[name] += size
            else:
                sizes["other"] += size
    return sizes


def percentile(values: list, q: float):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def http_json(port: int, method: str, path: str, body: bytes = None, timeout: float = 10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


class HealthzProbe:
    """GET /healthz through nginx every HEALTHZ_EVERY s on one keep-alive connection; latencies (us)."""

    def __init__(self, port: int):
        self.port = port
        self.latencies_us: list = []
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                start = time.perf_counter()
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                elapsed = time.perf_counter() - start
                if resp.status == 200:
                    self.latencies_us.append(elapsed * 1e6)
                else:
                    self.errors.append(f"HTTP {resp.status}")
            except (OSError, http.client.HTTPException) as error:
                self.errors.append(str(error))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(HEALTHZ_EVERY)
        if conn is not None:
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"samples": len(self.latencies_us), "errors": len(self.errors),
                "p50_us": round(percentile(self.latencies_us, 50) or 0), "p99_us": round(percentile(self.latencies_us, 99) or 0),
                "max_us": round(max(self.latencies_us, default=0))}


class ProcSampler:
    """Once a second: VmRSS, /proc/PID/io and CPU time of vwfcgi, and the size of its model's state."""

    def __init__(self, pid: int, model_state: str, t0: float):
        self.pid = pid
        self.model_state = model_state
        self.t0 = t0
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        try:
            s = {"t": round(time.perf_counter() - self.t0, 2), "rss_kb": rss_kb(self.pid),
                 "cpu_ticks": proc_cpu_ticks(self.pid)}
            s.update({k: v for k, v in proc_io(self.pid).items() if k in ("rchar", "wchar", "write_bytes", "syscw")})
        except OSError:
            return None
        s["state_bytes"] = state_sizes(self.model_state)["total"]
        try:  # join-state.json is replaced by a rename: a new inode is a new snapshot
            st = os.lstat(os.path.join(self.model_state, "join-state.json"))
            s["snapshot"] = [st.st_ino, st.st_size]
        except OSError:
            s["snapshot"] = None
        self.samples.append(s)
        return s

    def _run(self):
        while not self._stop.wait(1.0):
            self.sample()

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


def send_orphans(port: int, rate: float, seconds: float, batch: int, token: str) -> dict:
    """Open loop: batch i (event ids token-<i*batch> ..) is due at t0 + i * batch / rate; FLOOD_WORKERS
    keep-alive connections take the next due batch. No batch is started after t0 + seconds (a server
    slower than the target sends fewer, counted as not sent)."""
    per_s = rate / batch
    total = int(round(seconds * per_s))
    lock = threading.Lock()
    state = {"next": 0, "accepted": 0, "requests": 0, "not_sent": 0, "errors": [], "latencies_us": [],
             "late_s": 0.0, "last_done": 0.0}
    path = "/v1/models/loop:reward"
    t0 = time.perf_counter() + 0.2

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= total:
                    return
                due = t0 + i / per_s
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                elif now > t0 + seconds:
                    with lock:
                        state["not_sent"] += total - i
                        state["next"] = total
                    return
                first = i * batch
                body = json.dumps({"rewards": [{"event_id": f"{token}-{first + k}", "reward": 1}
                                               for k in range(batch)]}).encode()
                start = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException) as error:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    with lock:
                        state["errors"].append(f"batch {i}: {error}")
                    continue
                done = time.perf_counter()
                ok = resp.status == 202 and json.loads(raw) == {"accepted": batch}
                with lock:
                    state["requests"] += 1
                    state["latencies_us"].append((done - start) * 1e6)
                    state["late_s"] = max(state["late_s"], start - due)
                    state["last_done"] = max(state["last_done"], done)
                    if ok:
                        state["accepted"] += batch
                    else:
                        state["errors"].append(f"batch {i}: HTTP {resp.status} {raw[:200]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(FLOOD_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state["t0"] = t0
    state["batches"] = total
    state["elapsed_s"] = max(seconds, state["last_done"] - t0)
    return state


def orphan_flood(data: Data, run_dir: str, args, rows: list) -> dict:
    """The orphan-flood row: rewards for event ids never ranked, at --flood-rate for --flood-seconds,
    against its own vwfcgi + nginx (the loop model with a "loop" object, a fresh state directory)."""
    rate, seconds, batch = args.flood_rate, args.flood_seconds, args.flood_batch
    flood_dir = os.path.join(run_dir, "flood")
    os.makedirs(flood_dir, exist_ok=True)
    stack = VwfcgiStack(data, flood_dir, args.shards, models=flood_models(data, run_dir))
    model_state = os.path.join(stack.state_dir, "loop")
    try:
        pid = stack.vwfcgi.pid
        # The loop's settings show after its first join step (every 250 ms).
        deadline = time.time() + 15
        while True:
            status, loop0 = http_json(stack.port, "GET", "/v1/models/loop/loop")
            if status != 200 or (loop0.get("settings") or {}).get("reward_range") or time.time() > deadline:
                break
            time.sleep(0.25)
        if status != 200 or not (loop0.get("settings") or {}).get("reward_range"):
            raise BenchError(f"orphan flood: GET /v1/models/loop/loop answered {status}: {loop0}")
        say(f"orphan flood: vwfcgi pid {pid}, {rate:,.0f} rewards/s for {seconds:.0f}s in batches of {batch} "
            f"({rate / batch:,.0f} requests/s), reward_range {loop0['settings']['reward_range']}")
        with HealthzProbe(stack.port) as idle_probe:  # healthz latency with nothing else going on
            time.sleep(2.0)
        token = f"orphan-{os.getpid()}-{int(time.time())}"
        t_start = time.perf_counter()
        with OtherLoad() as other, ProcSampler(pid, model_state, t_start) as sampler, \
                HealthzProbe(stack.port) as probe:
            sent = send_orphans(stack.port, rate, seconds, batch, token)
            flood_probe = probe.summary()
            at_flood_end = sampler.sample()
            # The joiner steps every 250 ms: let it catch up and write what it writes after the flood.
            time.sleep(args.flood_drain)
        if not stack.vwfcgi.alive():
            raise BenchError(f"vwfcgi died during the orphan flood:\n{tail(stack.vwfcgi.log_path)}")
        status, loop1 = http_json(stack.port, "GET", "/v1/models/loop/loop")
        sizes = state_sizes(model_state)
        metrics = stack.metrics()
    finally:
        stack.stop()

    samples = sampler.samples
    first, last = samples[0], samples[-1]
    accepted = sent["accepted"]
    flood_s = sent["elapsed_s"]
    end_flood = at_flood_end or last
    wrote = end_flood["write_bytes"] - first["write_bytes"]
    wrote_total = last["write_bytes"] - first["write_bytes"]
    cpu_s = (end_flood["cpu_ticks"] - first["cpu_ticks"]) / CLK_TCK
    peak_kb = max(s["rss_kb"] for s in samples)
    per_100k = 100_000 / accepted if accepted else 0
    result = {
        "row": "orphan flood", "target_rewards_per_s": rate, "seconds": seconds, "batch": batch,
        "workers": FLOOD_WORKERS, "batches_planned": sent["batches"], "requests": sent["requests"],
        "batches_not_sent": sent["not_sent"], "errors": len(sent["errors"]), "error_detail": sent["errors"][:5],
        "accepted_rewards": accepted, "elapsed_s": round(flood_s, 2),
        "rewards_per_s": round(accepted / flood_s, 1) if flood_s else 0,
        "max_start_delay_s": round(sent["late_s"], 3),
        "request_p50_us": round(percentile(sent["latencies_us"], 50) or 0),
        "request_p99_us": round(percentile(sent["latencies_us"], 99) or 0),
        "rss_kb": {"start": first["rss_kb"], "peak": peak_kb, "end_of_flood": end_flood["rss_kb"],
                   "end": last["rss_kb"]},
        "rss_growth_mb_per_100k": round((last["rss_kb"] - first["rss_kb"]) / 1024 * per_100k, 2),
        "rss_peak_growth_mb_per_100k": round((peak_kb - first["rss_kb"]) / 1024 * per_100k, 2),
        "write_bytes": wrote, "write_bytes_with_drain": wrote_total,
        "write_bytes_per_s": round(wrote / flood_s, 1) if flood_s else 0,
        "rss_bytes_per_orphan": round((last["rss_kb"] - first["rss_kb"]) * 1024 / accepted) if accepted else None,
        # join-state.json rewritten (a new inode between two samples a second apart)
        "snapshots_written": sum(1 for a, b in zip(samples, samples[1:])
                                 if b.get("snapshot") and (not a.get("snapshot") or a["snapshot"][0] != b["snapshot"][0])),
        "write_bytes_per_reward": round(wrote_total / accepted, 1) if accepted else None,
        "wchar_per_reward": round((last["wchar"] - first["wchar"]) / accepted, 1) if accepted else None,
        "rchar_per_reward": round((last["rchar"] - first["rchar"]) / accepted, 1) if accepted else None,
        "log_bytes_per_reward": round(sizes["log"] / accepted, 1) if accepted else None,
        "cpu_s": round(cpu_s, 2), "cpu_us_per_reward": round(cpu_s * 1e6 / accepted, 1) if accepted else None,
        "state_dir": sizes, "healthz_idle": idle_probe.summary(), "healthz_during": flood_probe,
        "loop": {k: loop1.get(k) for k in ("rewards", "orphans", "dropped_orphans", "pending", "joined",
                                           "skipped_lines", "last_error")} if loop1 else {"status": status},
        "drain_s": args.flood_drain, "other_cpu_share": round(other.share, 3),
        "samples": samples,
        "dropped_metric": [line for line in metrics.splitlines()
                           if line.startswith("vwfcgi_loop_dropped_total") and 'model="loop"' in line],
    }
    result["per_second"] = [
        {"t": b["t"], "rss_mb": round(b["rss_kb"] / 1024, 1),
         "write_bytes_per_s": round((b["write_bytes"] - a["write_bytes"]) / max(1e-3, b["t"] - a["t"])),
         "wchar_per_s": round((b["wchar"] - a["wchar"]) / max(1e-3, b["t"] - a["t"]))}
        for a, b in zip(samples, samples[1:])]
    # Ratios to the plain rank/reward rows of this run (same machine, same binary).
    ratios = {}
    for verb in ("reward", "rank"):
        for c in (8, 64):
            ref = next((r for r in rows if r["server"] == VwfcgiStack.name and r["request"] == f"loop {verb}"
                        and r["concurrency"] == c and "vwfcgi_io" in r), None)
            if not ref:
                continue
            key = f"loop {verb} c={c}"
            ratios[key] = {
                "write_bytes_per_event": ref.get("vwfcgi_write_bytes_per_request"),
                "cpu_us_per_event": ref.get("vwfcgi_cpu_us_per_request"),
                "events_per_s": ref["req_per_s"],
            }
            if accepted and ref.get("vwfcgi_write_bytes_per_request"):
                ratios[key]["x_write_per_event"] = round(result["write_bytes_per_reward"] / ref["vwfcgi_write_bytes_per_request"], 3)
            if accepted and ref.get("vwfcgi_cpu_us_per_request"):
                ratios[key]["x_cpu_per_event"] = round(result["cpu_us_per_reward"] / ref["vwfcgi_cpu_us_per_request"], 3)
            if ref["req_per_s"]:
                ratios[key]["x_events_per_s"] = round(result["rewards_per_s"] / ref["req_per_s"], 2)
    result["vs_plain_rows"] = ratios
    busiest = max(result["per_second"], key=lambda p: p["write_bytes_per_s"], default=None)
    result["peak_write_bytes_per_s"] = busiest["write_bytes_per_s"] if busiest else 0
    result["peak_write_at_s"] = busiest["t"] if busiest else None
    idle, busy = result["healthz_idle"], result["healthz_during"]
    result["healthz_x_idle"] = {q: round(busy[q] / idle[q], 2) if idle[q] else None for q in ("p50_us", "p99_us")}
    return result


def print_flood(f: dict) -> list:
    """The orphan-flood section; returns its targets (issue 18)."""
    mb = lambda kb: kb / 1024  # noqa: E731
    r, s, lp = f["rss_kb"], f["state_dir"], f["loop"]
    print(f"\nOrphan flood (issue 18): :reward for event ids never ranked, {f['batch']} per request, "
          f"target {f['target_rewards_per_s']:,.0f}/s for {f['seconds']:.0f}s ({f['workers']} connections, open loop)")
    print(f"  achieved        {f['rewards_per_s']:,.0f} rewards/s ({f['rewards_per_s'] / f['target_rewards_per_s']:.2f}x target): "
          f"{f['accepted_rewards']:,} accepted in {f['elapsed_s']:.1f}s, {f['requests']:,} requests, errors {f['errors']}, "
          f"batches not sent {f['batches_not_sent']}, latest start {f['max_start_delay_s'] * 1000:.0f} ms behind schedule")
    print(f"  request latency p50 {fmt_us(f['request_p50_us'])}, p99 {fmt_us(f['request_p99_us'])} ({f['batch']} rewards, one fsync)")
    print(f"  vwfcgi RSS      start {mb(r['start']):.1f} MB, peak {mb(r['peak']):.1f} MB, end of flood "
          f"{mb(r['end_of_flood']):.1f} MB, end (+{f['drain_s']:.0f}s) {mb(r['end']):.1f} MB; growth "
          f"{f['rss_growth_mb_per_100k']:.2f} MB per 100k orphans (end), {f['rss_peak_growth_mb_per_100k']:.2f} (peak); "
          f"{f['rss_bytes_per_orphan']} B per orphan")
    print(f"  vwfcgi writes   {f['write_bytes_per_s'] / 1e6:.2f} MB/s to storage (write_bytes) during the flood; "
          f"{f['write_bytes_per_reward']:,.0f} B per reward incl. the drain (write_bytes), {f['wchar_per_reward']:,.0f} B "
          f"per reward passed to write() (wchar, sockets too), {f['rchar_per_reward']:,.0f} B read (rchar); "
          f"event log {f['log_bytes_per_reward']:,.0f} B per reward; busiest second {f['peak_write_bytes_per_s'] / 1e6:.2f} MB/s "
          f"(t={f['peak_write_at_s']}s); join-state.json rewritten {f['snapshots_written']} time(s)")
    print(f"  vwfcgi CPU      {f['cpu_s']:.1f} s ({f['cpu_us_per_reward']:.1f} us per reward)")
    print(f"  state dir       {s['total'] / 1e6:.1f} MB: log {s['log'] / 1e6:.1f} MB in {s['log_files']} file(s), "
          f"join-journal.jsonl {s['join-journal.jsonl'] / 1e6:.2f} MB, join-state.json {s['join-state.json'] / 1e6:.2f} MB, "
          f"joined {s['joined'] / 1e6:.2f} MB, other {s['other'] / 1e6:.2f} MB")
    print(f"  /loop           orphans {lp.get('orphans')}, dropped_orphans {lp.get('dropped_orphans')}, rewards "
          f"{lp.get('rewards')}, skipped_lines {lp.get('skipped_lines')}, last_error {lp.get('last_error')}")
    hi, hd, hx = f["healthz_idle"], f["healthz_during"], f["healthz_x_idle"]
    print(f"  GET /healthz    during the flood p50 {fmt_us(hd['p50_us'])}, p99 {fmt_us(hd['p99_us'])} ({hd['samples']} samples, "
          f"{hd['errors']} errors); idle before it p50 {fmt_us(hi['p50_us'])}, p99 {fmt_us(hi['p99_us'])} -> "
          f"{fmt_ratio(hx['p50_us'])} / {fmt_ratio(hx['p99_us'])} idle")
    for key, v in f["vs_plain_rows"].items():
        print(f"  vs {key:16} per event: write_bytes {f['write_bytes_per_reward']:,.0f} vs {v['write_bytes_per_event'] or 0:,.0f} B "
              f"({fmt_ratio(v.get('x_write_per_event'))}), vwfcgi CPU {f['cpu_us_per_reward']:.1f} vs "
              f"{v['cpu_us_per_event'] or 0:.1f} us ({fmt_ratio(v.get('x_cpu_per_event'))}); events/s "
              f"{f['rewards_per_s']:,.0f} vs {v['events_per_s']:,.0f} ({fmt_ratio(v.get('x_events_per_s'))})")
    if f["other_cpu_share"] > OTHER_LOAD_WARN:
        print(f"  WARNING: processes outside the benchmark used {f['other_cpu_share']:.0%} of the CPUs during the flood")
    out = []
    growth = max(f["rss_growth_mb_per_100k"], f["rss_peak_growth_mb_per_100k"])
    out.append({"target": f"orphan flood: vwfcgi RSS growth <= {RSS_GROWTH_LIMIT_MB:.0f} MB per 100k orphans",
                "measured": growth, "threshold": RSS_GROWTH_LIMIT_MB, "met": growth <= RSS_GROWTH_LIMIT_MB,
                "detail": f"start {mb(r['start']):.1f} MB, peak {mb(r['peak']):.1f} MB, end {mb(r['end']):.1f} MB "
                          f"after {f['accepted_rewards']:,} orphans"})
    w = f["write_bytes_per_reward"] or 0
    out.append({"target": f"orphan flood: bytes written per reward <= {WRITE_PER_REWARD_LIMIT:.0f}", "measured": w,
                "threshold": WRITE_PER_REWARD_LIMIT, "met": w <= WRITE_PER_REWARD_LIMIT,
                "detail": f"{f['write_bytes_per_s'] / 1e6:.2f} MB/s write_bytes at {f['rewards_per_s']:,.0f} rewards/s"})
    ach = f["rewards_per_s"] / f["target_rewards_per_s"]
    out.append({"target": f"orphan flood: {f['target_rewards_per_s']:,.0f} rewards/s sustained (>= 0.95x)",
                "measured": round(ach, 3), "threshold": 0.95, "met": ach >= 0.95 and not f["errors"],
                "detail": f"{f['rewards_per_s']:,.0f} rewards/s, {f['errors']} errors"})
    out.append({"target": "orphan flood: no orphan dropped (below max_orphans)", "measured": lp.get("dropped_orphans"),
                "threshold": 0, "met": lp.get("dropped_orphans") == 0,
                "detail": f"orphans {lp.get('orphans')} of {f['accepted_rewards']:,} sent"})
    return out


# --- the run ---------------------------------------------------------------------------------
def measure(server: Server, rset: RequestSet, connections: int, args, out: str, rows: list,
            sampler_pid: int = 0, io_pid: int = 0, script: str = "", url_path: str = ""):
    lua_dir = os.path.join(out, "wrk")
    tag = f"{server.name.split('+')[0].replace(' ', '-')}-{rset.model}-{rset.verb}-{rset.per_request}-{rset.fmt}"
    if not script:
        script = os.path.join(lua_dir, f"{tag}.lua")
        if not os.path.exists(script):
            lua_script(rset, script)
    url = f"http://127.0.0.1:{server.port}{url_path or server.path(rset.model, rset.verb)}"
    if args.warmup > 0:
        run_wrk(url, script, connections, args.warmup, None)
    rss = None
    raw = os.path.join(lua_dir, f"{tag}-c{connections}.txt")
    io0 = proc_io(io_pid) if io_pid else None
    cpu0 = proc_cpu_ticks(io_pid) if io_pid else None
    with OtherLoad() as other:
        if sampler_pid:
            with RssSampler(sampler_pid) as sampler:
                result = run_wrk(url, script, connections, args.duration, raw)
            rss = sampler.max_kb
        else:
            result = run_wrk(url, script, connections, args.duration, raw)
    io1 = proc_io(io_pid) if io_pid else None
    cpu1 = proc_cpu_ticks(io_pid) if io_pid else None
    seconds = result["duration_us"] / 1e6
    errors = result["connect"] + result["read"] + result["write"] + result["status"] + result["timeout"]
    good = result["requests"] - result["status"]
    row = {
        "server": server.name, "model": rset.model, "request": rset.kind, "format": rset.fmt,
        "examples_per_request": rset.per_request, "concurrency": connections,
        "requests": result["requests"], "seconds": round(seconds, 3),
        "req_per_s": round(good / seconds, 1),
        "examples_per_s": round(good * rset.per_request / seconds, 1),
        "p50_us": result["p50"], "p90_us": result["p90"], "p99_us": result["p99"],
        "p999_us": result["p999"], "max_us": result["max"],
        "other_cpu_share": round(other.share, 3),
        "errors": errors, "error_detail": {k: result[k] for k in
                                           ("connect", "read", "write", "status", "timeout")},
    }
    if rss is not None:
        row["vwfcgi_rss_max_kb"] = rss
    if io0 and io1:
        # What the vwfcgi process wrote during the timed run (its vw children excluded): write_bytes
        # is what it sent to storage (page-granular: an fsynced append dirties a whole page again),
        # wchar every byte it passed to write() (sockets included). Per 2xx request.
        row["vwfcgi_io"] = {k: io1[k] - io0[k] for k in ("write_bytes", "wchar", "rchar")}
        row["vwfcgi_cpu_s"] = round((cpu1 - cpu0) / CLK_TCK, 3)
        if good > 0:
            row["vwfcgi_write_bytes_per_request"] = round(row["vwfcgi_io"]["write_bytes"] / good, 1)
            row["vwfcgi_cpu_us_per_request"] = round(row["vwfcgi_cpu_s"] * 1e6 / good, 1)
    rows.append(row)
    flag = f"  ERRORS {row['error_detail']}" if errors else ""
    if other.share > OTHER_LOAD_WARN:
        flag += f"  (other processes used {other.share:.0%} of the CPUs)"
    say(f"{server.name:20} {rset.kind:14} c={connections:<3} {row['req_per_s']:>10,.0f} req/s "
        f"{row['examples_per_s']:>11,.0f} ex/s  p50 {fmt_us(row['p50_us']):>8}  "
        f"p99 {fmt_us(row['p99_us']):>8}{flag}")
    return row


def fmt_us(us) -> str:
    if us is None:
        return "-"
    if us >= 1000:
        return f"{us / 1000:.2f}ms"
    return f"{us:.0f}us"


def fmt_ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def add_ratios(rows, limits):
    python = [r for r in rows if r["server"] in (GunicornFlask.name, UvicornFastAPI.name)]
    for r in rows:
        limit = limits.get(r["model"])
        r["ratio_to_limit"] = round(r["examples_per_s"] / limit, 3) if limit else None
        # Best Python row with the same model, examples per request and concurrency (the Python
        # servers take JSON only; text/plain rows of vwfcgi are compared with them too).
        same = [p["req_per_s"] for p in python if p["model"] == r["model"]
                and p["examples_per_request"] == r["examples_per_request"]
                and p["concurrency"] == r["concurrency"]]
        r["ratio_to_best_python"] = round(r["req_per_s"] / max(same), 2) if same and max(same) > 0 else None


def print_table(rows, limits_rows):
    head = (f"{'server':22} {'request':14} {'c':>3} {'req/s':>10} {'examples/s':>11} {'p50':>9} "
            f"{'p99':>9} {'errors':>6} {'x limit':>8} {'x best py':>9} {'other cpu':>9}")
    print()
    print(head)
    print("-" * len(head))
    for r in limits_rows:
        print(f"{r['server']:22} {r['request']:14} {'-':>3} {'-':>10} {r['examples_per_s']:>11,.0f} "
              f"{'-':>9} {'-':>9} {'-':>6} {'1.00x':>8} {'-':>9}")
    for r in rows:
        print(f"{r['server']:22} {r['request']:14} {r['concurrency']:>3} {r['req_per_s']:>10,.0f} "
              f"{r['examples_per_s']:>11,.0f} {fmt_us(r['p50_us']):>9} {fmt_us(r['p99_us']):>9} "
              f"{r['errors']:>6} {fmt_ratio(r['ratio_to_limit']):>8} "
              f"{fmt_ratio(r['ratio_to_best_python']):>9} {r['other_cpu_share']:>9.0%}")
    print()


def print_disk_rate(rows):
    """Issue 24: what a decision costs on disk, beside the rank rows: vwfcgi's write_bytes (the event log's fsynced
    appends, the join's journal and joined files) per 2xx :rank, scaled to 1,000 decisions/s and a day."""
    parts = []
    for c in (8, 64):
        row = next((r for r in rows if r["server"] == VwfcgiStack.name and r["request"] == "loop rank"
                    and r["concurrency"] == c), None)
        per = row.get("vwfcgi_write_bytes_per_request") if row else None
        if per:
            parts.append(f"c={c}: {per:,.0f} B per decision = {per * 1000 / 1e6:.2f} MB/s per 1,000 decisions/s "
                         f"({per * 1000 * 86400 / 1e9:,.0f} GB/day)")
    if parts:
        print("Disk write rate of :rank (vwfcgi write_bytes, log + join; the bench's contexts are small: scale by your "
              "line size, docker/DEPLOY.md \"Sizing\"): " + "; ".join(parts))


def print_v2_vs_v1(rows):
    """The closing note on the Open Inference Protocol: V2 infer beside V1 predict (JSON), same model and examples."""
    parts = []
    for per_request in (1, BATCH):
        for c in (1, 8, 64):
            v1 = find(rows, VwfcgiStack.name, "logistic", per_request, "json", c)
            v2 = find(rows, VwfcgiStack.name, "logistic", per_request, "v2", c)
            if v1 and v2 and v1["req_per_s"] > 0:
                parts.append(f"{per_request} ex c={c}: V2 {v2['req_per_s']:,.0f} vs V1 {v1['req_per_s']:,.0f} req/s "
                             f"({v2['req_per_s'] / v1['req_per_s']:.2f}x)")
    if parts:
        print("Open Inference Protocol (V2 infer) vs V1 predict, logistic, JSON: " + "; ".join(parts))


def find(rows, server, model, per_request, fmt, c):
    for r in rows:
        if (r["server"] == server and r["model"] == model and r["examples_per_request"] == per_request
                and r["format"] == fmt and r["concurrency"] == c):
            return r
    return None


def targets(rows, limits, rss_max_kb):
    out = []

    def add(name, measured, threshold, ok, detail):
        out.append({"target": name, "measured": measured, "threshold": threshold,
                    "met": bool(ok) if ok is not None else None, "detail": detail})

    fast = find(rows, UvicornFastAPI.name, "logistic", 1, "json", 64)
    guni = find(rows, GunicornFlask.name, "logistic", 1, "json", 64)

    def serving_targets(server: str, prefix: str, batch_factor: float):
        """The single-example and batch targets of one vwfcgi stack (issue 6; issue 23 for native)."""
        for fmt in ("json", "text"):
            v = find(rows, server, "logistic", 1, fmt, 64)
            if v and fast:
                x = v["req_per_s"] / fast["req_per_s"]
                add(f"{prefix}1-example {fmt} c=64 >= 3x FastAPI -w2", round(x, 2), 3.0, x >= 3,
                    f"{v['req_per_s']:,.0f} vs {fast['req_per_s']:,.0f} req/s")
            if v and guni and not prefix:
                x = v["req_per_s"] / guni["req_per_s"]
                add(f"1-example {fmt} c=64 >= 10x gunicorn -w2 (original design)", round(x, 2), 10.0,
                    x >= 10, f"{v['req_per_s']:,.0f} vs {guni['req_per_s']:,.0f} req/s")
        for fmt in ("json", "text"):
            v = find(rows, server, "logistic", 1, fmt, 8)
            if v:
                add(f"{prefix}1-example {fmt} c=8 p99 <= 1 ms", round(v["p99_us"] / 1000, 3), 1.0,
                    v["p99_us"] <= 1000, f"p99 {fmt_us(v['p99_us'])}, p50 {fmt_us(v['p50_us'])}")
        for fmt in ("json", "text"):
            cands = [r for r in rows if r["server"] == server and r["model"] == "logistic"
                     and r["examples_per_request"] == BATCH and r["format"] == fmt]
            if cands and limits.get("logistic"):
                best = max(cands, key=lambda r: r["examples_per_s"])
                x = best["examples_per_s"] / limits["logistic"]
                add(f"{prefix}{BATCH}-example {fmt} >= {batch_factor}x direct-pipe limit (best c)", round(x, 3),
                    batch_factor, x >= batch_factor, f"{best['examples_per_s']:,.0f} ex/s at c={best['concurrency']} vs "
                                                     f"limit {limits['logistic']:,.0f} ex/s")

    serving_targets(VwfcgiStack.name, "", 0.75)
    serving_targets(VwfcgiNativeStack.name, "native ", 2.0)
    ceiling = next((r for r in rows if r["server"] == VwfcgiNativeStack.name and r["model"] == "healthz"
                    and r["concurrency"] == 64), None)
    for fmt in ("json", "text"):
        n64 = find(rows, VwfcgiNativeStack.name, "logistic", 1, fmt, 64)
        if n64 and ceiling:
            x = n64["req_per_s"] / ceiling["req_per_s"]
            add(f"native 1-example {fmt} c=64 >= 0.85x GET /healthz", round(x, 2), 0.85, x >= 0.85,
                f"{n64['req_per_s']:,.0f} vs {ceiling['req_per_s']:,.0f} req/s")
    for c in (8, 64):
        predict = next((r for r in rows if r["server"] == VwfcgiStack.name and r["request"] == "loop predict json"
                        and r["concurrency"] == c), None)
        for verb in ("rank", "reward"):
            row = next((r for r in rows if r["server"] == VwfcgiStack.name and r["request"] == f"loop {verb}"
                        and r["concurrency"] == c), None)
            if predict and row and c == 64:
                x = row["req_per_s"] / predict["req_per_s"]
                add(f"{verb} c=64 >= 50% of predict's req/s (durable log, group commit)", round(x, 2), 0.5, x >= 0.5,
                    f"{row['req_per_s']:,.0f} vs {predict['req_per_s']:,.0f} req/s")
            if row and c == 8:
                add(f"{verb} c=8 p99 <= 5 ms", round(row["p99_us"] / 1000, 3), 5.0, row["p99_us"] <= 5000,
                    f"p99 {fmt_us(row['p99_us'])}, p50 {fmt_us(row['p50_us'])}")
    for c in (8, 64):
        rank, personalizer = (next((r for r in rows if r["server"] == VwfcgiStack.name and r["request"] == name
                                    and r["concurrency"] == c), None) for name in ("loop rank", "personalizer rank"))
        if rank and personalizer:
            x = personalizer["req_per_s"] / rank["req_per_s"]
            add(f"Personalizer rank c={c} >= 0.8x :rank (same model, same decision path)", round(x, 2), 0.8, x >= 0.8,
                f"{personalizer['req_per_s']:,.0f} vs {rank['req_per_s']:,.0f} req/s, "
                f"p99 {fmt_us(personalizer['p99_us'])} vs {fmt_us(rank['p99_us'])}")
    if rss_max_kb:
        add("vwfcgi RSS (without vw children) <= 30 MB during c=64", round(rss_max_kb / 1024, 1),
            30.0, rss_max_kb <= 30 * 1024, f"max VmRSS {rss_max_kb / 1024:.1f} MiB")
    return out


COLORS = {"vwfcgi json": "tab:red", "vwfcgi text": "tab:purple", "vwfcgi ADF json": "tab:green",
          "gunicorn+flask -w2": "tab:orange", "fastapi+uvicorn -w2": "tab:blue"}


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy (from /proc/stat) over `seconds`, before we start any load."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
        return 1 - (idle1 - idle0) / max(1, total1 - total0)
    except (OSError, ValueError, IndexError):
        return 0.0


def plot(rows, limits, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    panels = [(axes[0], 1, "req_per_s", "requests/s (1 example per request)"),
              (axes[1], BATCH, "examples_per_s", f"examples/s ({BATCH} examples per request)")]
    for ax, per, key, xlabel in panels:
        series = {}
        for r in rows:
            if r["examples_per_request"] != per:
                continue
            if r["server"] != VwfcgiStack.name:
                label = r["server"]
            elif r["model"] == "loop":
                label = f"vwfcgi {r['request']}"
            else:
                label = f"vwfcgi {'ADF ' if r['model'] == 'adf' else ''}{r['format']}"
            series.setdefault(label, []).append(r)
        for label, pts in sorted(series.items()):
            pts.sort(key=lambda r: r["concurrency"])
            xs = [r[key] for r in pts]
            ys = [r["p99_us"] / 1000 for r in pts]
            ax.plot(xs, ys, marker="o", label=label, color=COLORS.get(label))
            for r, x, y in zip(pts, xs, ys):
                ax.annotate(f"c={r['concurrency']}", (x, y), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        if per == BATCH and limits.get("logistic"):
            ax.axvline(limits["logistic"], color="grey", linestyle="--", linewidth=1)
            ax.annotate("direct pipe limit", (limits["logistic"], ax.get_ylim()[1]),
                        rotation=90, va="top", ha="right", fontsize=8, color="grey")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("p99 latency (ms, log)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("vwfcgi benchmark: throughput against p99 latency (wrk, one line per server)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_info() -> dict:
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import vowpalwabbit
        info["vowpalwabbit"] = getattr(vowpalwabbit, "__version__", "?")
    except ImportError:
        pass
    for cmd in (["wrk", "-v"], ["nginx", "-v"]):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
            info[cmd[0]] = (p.stdout + p.stderr).splitlines()[0].strip()
        except (OSError, IndexError):
            pass
    return info


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 5)),
                        help="seconds per timed wrk row (default 5)")
    parser.add_argument("--warmup", type=float, default=float(os.environ.get("BENCH_WARMUP", 1)),
                        help="seconds of wrk warm-up before each row (default 1)")
    parser.add_argument("--shards", type=int, default=int(os.environ.get("BENCH_SHARDS", 1)),
                        help="vw processes per model for vwfcgi (default 1)")
    parser.add_argument("--out", default=os.path.join(BENCH, "out"))
    parser.add_argument("--only", choices=("orphan-flood",),
                        help="orphan-flood: only the orphan-flood row and the loop rank/reward rows it is "
                             "compared with (no pipe limit, no other rows, no Python servers, no plot)")
    parser.add_argument("--flood-seconds", type=float, default=float(os.environ.get("BENCH_FLOOD_SECONDS", 30)),
                        help="seconds of the orphan-flood row (default 30; 0 leaves the row out)")
    parser.add_argument("--flood-rate", type=float, default=10_000,
                        help="orphan rewards per second the flood aims at (default 10000)")
    parser.add_argument("--flood-batch", type=int, default=100, help="rewards per :reward request (default 100)")
    parser.add_argument("--flood-drain", type=float, default=5,
                        help="seconds vwfcgi is still sampled after the flood (default 5)")
    parser.add_argument("--only-vwfcgi", action="store_true",
                        help="only the pipe limit and the vwfcgi rows (vw pool and native), no Python servers")
    args = parser.parse_args(argv)
    if args.flood_rate <= 0 or not 1 <= args.flood_batch <= 10_000 or args.flood_seconds < 0 or args.flood_drain < 0:
        parser.error("--flood-rate > 0, --flood-batch in 1..10000, --flood-seconds and --flood-drain >= 0")
    if args.only == "orphan-flood" and args.flood_seconds <= 0:
        parser.error("--only orphan-flood needs --flood-seconds > 0")
    only_flood = args.only == "orphan-flood"
    # wrk takes whole seconds.
    args.duration = max(1, int(round(args.duration)))
    args.warmup = max(0, int(round(args.warmup)))

    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed (scripts/install-deps.sh installs it)")
    started = time.time()
    out = os.path.abspath(args.out)
    run_dir = os.path.join(out, "run")
    for d in (run_dir, os.path.join(out, "wrk")):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)

    subprocess.run([PY, os.path.join(BENCH, "make_data.py"), out], check=True)
    data = Data(out)
    busy_start = cpu_busy()
    if busy_start > 0.2:
        say(f"WARNING: the machine is busy ({busy_start:.0%} of the CPUs in use before the first "
            f"row): other processes share the CPUs and every row will be slower and noisier")
    sets = request_sets(data)
    say(f"{args.duration}s per row after {args.warmup}s of warm-up, wrk -t1, {os.cpu_count()} CPUs")

    # (1) the limit
    limits = {}
    limit_rows = []
    for model, examples, expected, vw_args, repeats, label in () if only_flood else (
            ("logistic", data.lines, data.expected, data.logistic_args, 30, "1 ex/line"),
            ("adf", data.adf, data.adf_expected, [], 10, "ADF 10 actions")):
        best = None
        for _ in range(2):  # best of two: the limit should not be lowered by a hiccup
            res = pipe_limit(f"pipe {model}", os.path.join(data.models, f"{model}.vw"), vw_args,
                             examples, expected, model, repeats, check_count=500)
            best = res if best is None or res["examples_per_s"] > best["examples_per_s"] else best
        limits[model] = best["examples_per_s"]
        limit_rows.append({"server": "direct pipe (limit)", "model": model, "request": label,
                           "examples": best["examples"], "seconds": round(best["seconds"], 3),
                           "examples_per_s": round(best["examples_per_s"], 1)})
        say(f"direct pipe to one vw, {model}: {best['examples_per_s']:,.0f} examples/s "
            f"({best['examples']} examples in {best['seconds']:.2f}s, predictions checked)")

    rows = []
    rss = {"idle_kb": None, "max_during_c64_kb": 0}
    nginx_errors: dict = {}
    vw_metrics = ""

    # (2) vwfcgi through nginx
    stack = VwfcgiStack(data, run_dir, args.shards)
    try:
        rss["idle_kb"] = rss_kb(stack.vwfcgi.pid)
        checked = [("loop", "rank"), ("loop", "personalizer"), ("loop", "reward")] if only_flood else [
            ("logistic", 1, "json"), ("logistic", 1, "text"), ("logistic", BATCH, "json"),
            ("logistic", BATCH, "text"), ("logistic", 1, "v2"), ("logistic", BATCH, "v2"), ("adf", 1, "json"),
            ("loop", 1, "json"), ("loop", "rank"), ("loop", "personalizer"), ("loop", "reward")]
        for key in checked:
            check_server("vwfcgi", stack.port, sets[key], stack.path(key[0], sets[key].verb))
        say(f"vwfcgi: answers match VW for all {sum(len(sets[k].bodies) for k in checked)} "
            f"request bodies (pid {stack.vwfcgi.pid}, idle RSS {rss['idle_kb'] / 1024:.1f} MiB)")
        plan = [(("logistic", 1, "json"), (1, 8, 64)), (("logistic", 1, "text"), (1, 8, 64)),
                (("logistic", BATCH, "json"), (1, 8, 64)), (("logistic", BATCH, "text"), (1, 8, 64)),
                (("logistic", 1, "v2"), (1, 8, 64)), (("logistic", BATCH, "v2"), (1, 8, 64)),
                (("adf", 1, "json"), (8, 64)),
                (("loop", 1, "json"), (8, 64)), (("loop", "rank"), (8, 64)), (("loop", "personalizer"), (8, 64)),
                (("loop", "reward"), (8, 64))]
        if only_flood:
            plan = [(("loop", "rank"), (8, 64)), (("loop", "personalizer"), (8, 64)), (("loop", "reward"), (8, 64))]
        log_offset = stack.error_log_offset()
        for key, conns in plan:
            for c in conns:
                if not stack.vwfcgi.alive():
                    raise BenchError(f"vwfcgi died under load:\n{tail(stack.vwfcgi.log_path)}")
                # The loop rows also record what vwfcgi wrote and its CPU time (the orphan flood's yardstick).
                row = measure(stack, sets[key], c, args, out, rows,
                              sampler_pid=stack.vwfcgi.pid if c == 64 else 0,
                              io_pid=stack.vwfcgi.pid if key[0] == "loop" else 0)
                if c == 64:
                    rss["max_during_c64_kb"] = max(rss["max_during_c64_kb"], row["vwfcgi_rss_max_kb"])
        nginx_errors = stack.error_log_summary(log_offset)
        rss["after_kb"] = rss_kb(stack.vwfcgi.pid)
        vw_metrics = stack.metrics()
        # Answers still right after the load.
        if not only_flood:
            check_server("vwfcgi (after load)", stack.port, sets[("logistic", 1, "json")],
                         stack.path("logistic"))
    finally:
        stack.stop()
    with open(os.path.join(out, "vwfcgi-metrics.txt"), "w") as f:
        f.write(vw_metrics)

    # (2b) the native scorer through the same nginx (SPEC §11), beside the FastCGI front's ceiling
    native = VwfcgiNativeStack(data, run_dir, args.shards)
    try:
        engine = next(m for m in native.models if m["name"] == "logistic").get("engine")
        if engine != "native":
            raise BenchError(f"the logistic model is not served natively: {native.models}")
        for key in (("logistic", 1, "json"), ("logistic", 1, "text"), ("logistic", BATCH, "json")):
            check_server("vwfcgi native", native.port, sets[key], native.path("logistic"))
        say("vwfcgi native: answers match VW (logistic model served by the native scorer)")
        for c in (8, 64):
            healthz_row(native, c, args, out, rows)
        for key, conns in ((("logistic", 1, "json"), (8, 64)), (("logistic", 1, "text"), (8, 64)),
                           (("logistic", BATCH, "json"), (8, 64)), (("logistic", BATCH, "text"), (8, 64))):
            for c in conns:
                if not native.vwfcgi.alive():
                    raise BenchError(f"vwfcgi (native) died under load:\n{tail(native.vwfcgi.log_path)}")
                measure(native, sets[key], c, args, out, rows)
        native_metrics = native.metrics()
        if "vwfcgi_native_mismatches_total" in native_metrics:
            raise BenchError("the native scorer's shadow checks found a difference: see the metrics")
    finally:
        native.stop()

    # (3) original design, (4) FastAPI in-process
    for cls in () if (only_flood or args.only_vwfcgi) else (GunicornFlask, UvicornFastAPI):
        server = cls(data, run_dir)
        try:
            for key in (("logistic", 1, "json"), ("logistic", BATCH, "json")):
                check_server(server.name, server.port, sets[key], server.path("logistic"))
            say(f"{server.name}: answers match VW")
            for key in (("logistic", 1, "json"), ("logistic", BATCH, "json")):
                for c in (1, 8, 64):
                    measure(server, sets[key], c, args, out, rows)
        finally:
            server.stop()

    # (5) the orphan flood (issue 18): its own vwfcgi + nginx, last, so nothing else runs beside it
    flood = orphan_flood(data, run_dir, args, rows) if args.flood_seconds > 0 else None

    add_ratios(rows, limits)
    verdicts = targets(rows, limits, rss["max_during_c64_kb"])
    print_table(rows, limit_rows)
    if busy_start > 0.2:
        print(f"WARNING: {busy_start:.0%} of the CPUs were busy before the first row: other "
              f"processes shared the CPUs; compare ratios, and rerun on an idle machine")
    print_v2_vs_v1(rows)
    print_disk_rate(rows)
    print(f"vwfcgi RSS (VmRSS of the vwfcgi pid, vw children excluded): idle "
          f"{rss['idle_kb'] / 1024:.1f} MiB, max during c=64 rows {rss['max_during_c64_kb'] / 1024:.1f} MiB, "
          f"after the run {rss.get('after_kb', 0) / 1024:.1f} MiB")
    noisy = [r for r in rows if r["other_cpu_share"] > OTHER_LOAD_WARN]
    if noisy:
        print(f"WARNING: in {len(noisy)} row(s) processes outside the benchmark used more than "
              f"{OTHER_LOAD_WARN:.0%} of the CPUs ('other cpu'): those rows are slower than this "
              f"machine can do; rerun on an idle machine")
    errors = [r for r in rows if r["errors"]]
    for r in errors:
        print(f"ERRORS in row {r['server']} {r['request']} c={r['concurrency']}: {r['error_detail']}")
    if CHECK_502:
        print(f"{len(CHECK_502)} request(s) of the correctness checks got HTTP 502 and were retried: "
              f"{CHECK_502[:5]}")
    for message, count in sorted(nginx_errors.items(), key=lambda kv: -kv[1]):
        print(f"nginx error.log during the vwfcgi rows: {count} x {message}")
    flood_verdicts = print_flood(flood) if flood else []
    for title, group in (("Targets (issue 6):", verdicts), ("Targets (issue 18, orphan flood):", flood_verdicts)):
        if not group:
            continue
        print(f"\n{title}")
        for t in group:
            verdict = "MET    " if t["met"] else "NOT MET"
            print(f"  {verdict} {t['target']}: {t['measured']} (threshold {t['threshold']}; {t['detail']})")
    verdicts = verdicts + flood_verdicts

    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds_total": round(time.time() - started, 1),
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "wrk_threads": 1, "only": args.only,
                     "flood": {"seconds": args.flood_seconds, "rate": args.flood_rate, "batch": args.flood_batch,
                               "drain_s": args.flood_drain, "workers": FLOOD_WORKERS},
                     "vwfcgi_shards": args.shards, "nginx_access_log": "off",
                     "distinct_bodies": {"1": N_SINGLE_BODIES, str(BATCH): N_BATCH_BODIES,
                                         "adf": N_ADF_BODIES}},
        "machine": dict(machine_info(), cpu_busy_before=round(busy_start, 3)),
        "limit": limit_rows,
        "rows": rows,
        "vwfcgi_rss": rss,
        "orphan_flood": flood,
        "nginx_error_log": nginx_errors,
        "check_502_retries": CHECK_502,
        "targets": verdicts,
    }
    # A partial run does not overwrite the full run's results.
    results_path = os.path.join(out, "results-orphan-flood.json" if only_flood else "results.json")
    with open(results_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    if only_flood:
        print(f"\nwrote {results_path} ({results['seconds_total']:.0f} s)")
        return 0
    if not args.only_vwfcgi:
        plot(rows, limits, os.path.join(out, "plot.png"))
    print(f"\nwrote {results_path} and {os.path.join(out, 'plot.png')} "
          f"({results['seconds_total']:.0f} s)")
    return 0


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        status = main(sys.argv[1:])
    except BenchError as error:
        say(f"ERROR: {error}")
        status = 1
    except KeyboardInterrupt:
        say("interrupted")
        status = 130
    finally:
        for p in list(LIVE_PIPES):
            if p.poll() is None:
                p.kill()
                p.wait()
        stop_all()
    sys.exit(status)
