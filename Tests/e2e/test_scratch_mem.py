import json, random, pytest
from pathlib import Path
from conftest import features_to_text, logistic_features, Stack
from test_v2_memory import status_kib, LIMIT

def measure(stack, path, body, ctype="application/json"):
    pid = stack.vwfcgi.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = status_kib(pid, "VmRSS")
    r = stack.post(path, data=body, headers={"Content-Type": ctype}, timeout=120)
    return r.status_code, (status_kib(pid, "VmHWM") - before) / 1024, len(body) / 2**20

@pytest.mark.parametrize("fmt", ["v2", "v1", "text"])
def test_scratch(model_dir, fmt):
    s = Stack(model_dir, max_body="16m", extra_args=("--max-body-bytes", str(LIMIT), "--max-batch", "200000")).start()
    rng = random.Random(18)
    lines = [" " + features_to_text(logistic_features(rng)) for _ in range(2000)]
    examples = [lines[i % 2000] for i in range(72249)]
    bodies = {"v2": ("/v2/models/logistic/infer", json.dumps({"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [len(examples)], "data": examples}]}).encode(), "application/json"),
              "v1": ("/v1/models/logistic:predict", json.dumps({"instances": examples}).encode(), "application/json"),
              "text": ("/v1/models/logistic:predict", ("\n".join(examples) + "\n").encode(), "text/plain")}
    path, body, ct = bodies[fmt]
    small = {"v2": b'{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a x:1"]}]}', "v1": b'{"instances": ["|a x:1"]}', "text": b"|a x:1\n"}[fmt]
    measure(s, path, small, ct)
    print(fmt, measure(s, path, body, ct), measure(s, path, body, ct))
    s.stop()
