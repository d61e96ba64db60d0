"""A tiny model file can ask vw for gigabytes (`-b 28`): the store estimates the weights from the header (2^b slots
× floats per slot × 4 bytes × shards) and refuses it above --vw-memory-limit, before any vw starts (issue 20, item 12)."""

from __future__ import annotations

import subprocess

from conftest import REFERENCE_VW, Stack, wait_until


def test_a_model_whose_weights_exceed_the_memory_limit_is_refused_with_the_estimate(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    data = tmp_path / "d.txt"
    data.write_text("1 |a x:1\n0 |a y:1\n")
    for name, bits in (("small", 18), ("huge", 28)):
        subprocess.run([REFERENCE_VW, "-b", str(bits), "-d", str(data), "-f", str(models / f"{name}.vw"), "--quiet"],
                       check=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (models / "huge.vw").stat().st_size < 4096  # small on disk: vw saves the non-zero weights only
    stack = Stack(models, extra_args=("--vw-memory-limit", "512M")).start()
    try:
        status = wait_until(lambda: (s := stack.get("/v1/models/huge").json())["last_error"] and s, 30, step=0.2)
        assert status and not status["ready"], status
        assert "above --vw-memory-limit 512 MiB" in status["last_error"]["reason"] and "1.0 GiB" in status["last_error"]["reason"], status
        assert stack.post("/v1/models/huge:predict", json={"instances": [" |a x:1"]}).status_code == 503
        r = stack.post("/v1/models/small:predict", json={"instances": [" |a x:1"]})
        assert r.status_code == 200, r.text
        # The serving version reports its estimate: 2^18 floats of 4 bytes in each of its shards.
        small = stack.get("/v1/models/small").json()
        assert small["weights_bytes_estimate"] == (1 << 18) * 4 * len(small["shards"]), small
        assert status["weights_bytes_estimate"] is None, status  # nothing serves
    finally:
        assert not stack.stop()
