"""`--csoaa_ldf` models predict only labeled examples: their labels must reach vw as written,
while contextual-bandit ADF labels are dropped (SPEC §5: predictions equal VW's own)."""

import subprocess

from conftest import REFERENCE_VW, Stack

TRAIN = "1:0 |a id0 x\n2:1 |a id1 x\n\n1:1 |a id0 y\n2:0 |a id1 y\n\n" * 20
QUERY = "1:0 |a id0 x\n2:0 |a id1 x\n\n1:0 |a id0 y\n2:0 |a id1 y\n\n"


def test_csoaa_ldf_examples_keep_their_labels(tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (tmp_path / "train.txt").write_text(TRAIN)
    subprocess.run([REFERENCE_VW, "-d", str(tmp_path / "train.txt"), "-f", str(model_dir / "ldf.vw"),
                    "--csoaa_ldf", "multiline", "--quiet"], check=True, timeout=60)
    (tmp_path / "query.txt").write_text(QUERY)
    subprocess.run([REFERENCE_VW, "-i", str(model_dir / "ldf.vw"), "-t", "-d", str(tmp_path / "query.txt"),
                    "-p", str(tmp_path / "want.txt"), "--quiet"], check=True, timeout=60)
    want = (tmp_path / "want.txt").read_text()
    assert want.strip(), "vw printed nothing: the reference itself is broken"
    stack = Stack(model_dir, shards=1).start()
    try:
        r = stack.post("/v1/models/ldf:predict", data=QUERY, headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        assert r.text == want
        status = stack.get("/v1/models/ldf").json()
        assert status["multiline"] is True
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
