"""V2 request bodies are decoded as a stream (issue 18 item 8): one ~7 MiB `/v2/models/<n>/infer`
body raises vwfcgi's peak resident memory by at most 4x its size, whatever its shape (before: the
whole JSON tree was built, +183 MB for a 7.3 MiB body of numbers).

Memory is measured on the vwfcgi process itself: its peak (VmHWM) is reset through
/proc/<pid>/clear_refs ("5"), its resident size (VmRSS) read, the one request sent, and the new peak
read. A memory bound, not a timing assertion.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import Stack, assert_json_error, assert_scalar_predictions, features_to_text, logistic_features, wait_until

BODY_BYTES = 7 << 20
LIMIT = 16 << 20


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def big_stack(model_dir):
    """A fresh server per test: memory an earlier request freed would hide what the next one takes."""
    s = Stack(model_dir, max_body="16m",
              extra_args=("--max-body-bytes", str(LIMIT), "--max-batch", "200000")).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def peak_increase(stack: Stack, body: bytes, want_status: int):
    """(bytes the peak rose above the resident size, the response) for one request of `body`."""
    pid = stack.vwfcgi.pid
    # Warm the route (threads, caches, the model's first answers) before measuring.
    small = b'{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a x:1"]}]}'
    assert stack.post("/v2/models/logistic/infer", data=small, headers={"Content-Type": "application/json"}).status_code == 200
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = status_kib(pid, "VmRSS")
    r = stack.post("/v2/models/logistic/infer", data=body, headers={"Content-Type": "application/json"}, timeout=120)
    peak = status_kib(pid, "VmHWM")
    assert r.status_code == want_status, f"{r.status_code} {r.text[:300]!r}"
    print(f"V2 body of {len(body) / 2**20:.1f} MiB: peak RSS +{(peak - before) / 1024:.1f} MiB")
    return (peak - before) * 1024, r


def pad(prefix: bytes, element: bytes, suffix: bytes) -> tuple[bytes, int]:
    """prefix + element, element, ... + suffix of about BODY_BYTES, and the number of elements."""
    count = (BODY_BYTES - len(prefix) - len(suffix)) // (len(element) + 1)
    return prefix + b",".join([element] * count) + suffix, count


def examples_body() -> tuple[bytes, list[str]]:
    """About BODY_BYTES of V2 request: logistic-model examples of ~100 bytes (and the distinct lines)."""
    rng = random.Random(18)
    lines = [" " + features_to_text(logistic_features(rng)) for _ in range(2000)]
    examples = []
    size = 0
    while size < BODY_BYTES - 200:
        line = lines[len(examples) % len(lines)]
        examples.append(line)
        size += len(line) + 4
    body = json.dumps({"id": "big", "inputs": [{"name": "examples", "datatype": "BYTES", "shape": [len(examples)],
                                                "data": examples}]}).encode()
    return body, lines


def test_a_7mib_body_of_examples_raises_the_peak_by_at_most_4x_its_size(big_stack, reference):
    body, lines = examples_body()
    increase, r = peak_increase(big_stack, body, 200)
    doc = r.json()
    assert doc["outputs"][0]["shape"] == [json.loads(body)["inputs"][0]["shape"][0]]
    assert_scalar_predictions(doc["outputs"][0]["data"][:20], [reference.predict("logistic", line) for line in lines[:20]])
    assert increase <= 4 * len(body), f"peak rose by {increase / 2**20:.1f} MiB for a {len(body) / 2**20:.1f} MiB body"


def test_the_memory_of_a_large_request_is_given_back(big_stack):
    """malloc keeps freed pages unless told: after a 7 MiB request vwfcgi trims them (before, 16
    such requests at once left hundreds of MB resident for good)."""
    pid = big_stack.vwfcgi.pid
    before = status_kib(big_stack.vwfcgi.pid, "VmRSS")
    body, _ = examples_body()
    increase, _ = peak_increase(big_stack, body, 200)
    assert increase > 2 * len(body), "the request did not take the memory this test expects to see given back"
    kept = wait_until(lambda: (status_kib(pid, "VmRSS") - before) * 1024 <= len(body), 5)
    assert kept, f"{(status_kib(pid, 'VmRSS') - before) / 1024:.1f} MiB still resident after the request"


@pytest.mark.parametrize("shape", ["numbers in data", "numbers in parameters"])
def test_a_7mib_body_of_other_values_raises_the_peak_by_at_most_4x_its_size(big_stack, shape):
    if shape == "numbers in data":
        body, count = pad(b'{"inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": [', b"1", b"]}]}")
        status = 400
    else:
        body, count = pad(b'{"parameters": {"p": [', b"0",
                          b']}, "inputs": [{"name": "examples", "datatype": "BYTES", "shape": [1], "data": ["|a x:1"]}]}')
        status = 200
    assert count > 3_000_000
    increase, r = peak_increase(big_stack, body, status)
    if status == 400:
        assert_json_error(r, 400, contains="data[0] must be a string")
    assert increase <= 4 * len(body), f"peak rose by {increase / 2**20:.1f} MiB for a {len(body) / 2**20:.1f} MiB body ({shape})"
