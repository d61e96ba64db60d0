"""Train the demo model served by `make run`: logistic regression, two namespaces, -q ab.

    .venv/bin/python scripts/train_demo.py MODEL_DIR

Writes MODEL_DIR/demo.json ({"vw_args": ["--link", "logistic"]}, so predictions are
probabilities) and MODEL_DIR/demo.vw. Both are written under a temporary name and renamed,
because a running vwfcgi picks up any new file in the directory.
"""

import json
import os
import random
import sys
import tempfile

import vowpalwabbit


def examples(count: int, seed: int = 7):
    """Synthetic data: y = 1 when 2x - y + 3xy + noise > 0.5 (the xy term needs -q ab)."""
    rng = random.Random(seed)
    for _ in range(count):
        x, z = rng.random(), rng.random()
        y, w = rng.random(), rng.random()
        score = 2 * x - y + 3 * x * y + 0.5 * z - 0.5 * w + rng.gauss(0, 0.3)
        label = 1 if score > 1.2 else -1
        yield f"{label} |a x:{x:.4f} z:{z:.4f} |b y:{y:.4f} w:{w:.4f}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir = os.path.abspath(argv[0])
    os.makedirs(model_dir, exist_ok=True)

    json_tmp = os.path.join(model_dir, "demo.json.tmp")
    with open(json_tmp, "w") as f:
        json.dump({"vw_args": ["--link", "logistic"]}, f)
        f.write("\n")
    os.replace(json_tmp, os.path.join(model_dir, "demo.json"))

    fd, model_tmp = tempfile.mkstemp(prefix=".demo.", suffix=".vw.tmp", dir=model_dir)
    os.close(fd)
    try:
        ws = vowpalwabbit.Workspace(
            f"--loss_function logistic -q ab --passes 1 -b 18 --random_seed 7 --quiet -f {model_tmp}"
        )
        for line in examples(4000):
            ws.learn(line)
        ws.finish()
        os.chmod(model_tmp, 0o644)
        os.replace(model_tmp, os.path.join(model_dir, "demo.vw"))
    finally:
        if os.path.exists(model_tmp):
            os.unlink(model_tmp)
    print(f"trained {os.path.join(model_dir, 'demo.vw')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
