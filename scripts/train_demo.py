"""Train the demo models served by `make run` into an empty MODEL_DIR.

    .venv/bin/python scripts/train_demo.py MODEL_DIR

* `demo`: logistic regression, two namespaces, -q ab. MODEL_DIR/demo.json is
  {"vw_args": ["--link", "logistic"]}, so predictions are probabilities.
* `recommend`: a contextual bandit for the learning loop (README "Learning loop demo",
  scripts/simulate_loop.py): `--cb_explore_adf --epsilon 0.2 -q UA` over VW JSON contexts
  {"User": {"id": ...}, "_multi": [{"Action": {"t": ...}}, ...]}, trained on a handful of
  uninformative events (every reward 0), so it starts knowing nothing and picks actions
  alike for every user. It is saved with VW's save_resume state (VW 9's default for -f), so
  the trainer can continue from it. MODEL_DIR/recommend.json turns the loop on:
  {"input": "vw_json", "loop": {"update_interval": "5s", "min_events": 50, ...}}.

Every file is written under a temporary name and renamed, because a running vwfcgi picks up
any new file in the directory (the .json first, so the model loads with it).
"""

import json
import os
import random
import sys
import tempfile

import pylibvw
import vowpalwabbit

# The synthetic world of scripts/simulate_loop.py uses these users and actions.
USERS = ["alice", "bob", "carol", "dave"]
ACTIONS = ["sports", "news", "music", "movies"]
RECOMMEND_JSON = {"input": "vw_json",
                  "loop": {"update_interval": "5s", "min_events": 50, "reward_wait": "2s", "default_reward": 0.0}}
RECOMMEND_ARGS = "--cb_explore_adf --epsilon 0.2 -q UA --random_seed 7"


def examples(count: int, seed: int = 7):
    """Synthetic data: y = 1 when 2x - y + 3xy + noise > 0.5 (the xy term needs -q ab)."""
    rng = random.Random(seed)
    for _ in range(count):
        x, z = rng.random(), rng.random()
        y, w = rng.random(), rng.random()
        score = 2 * x - y + 3 * x * y + 0.5 * z - 0.5 * w + rng.gauss(0, 0.3)
        label = 1 if score > 1.2 else -1
        yield f"{label} |a x:{x:.4f} z:{z:.4f} |b y:{y:.4f} w:{w:.4f}"


def uninformative_events(count: int = 16, seed: int = 7):
    """dsjson learning lines (the format the loop's joiner writes): uniform logging, reward 0 for all."""
    rng = random.Random(seed)
    p = round(1 / len(ACTIONS), 4)
    for i in range(count):
        user, chosen = rng.choice(USERS), rng.randrange(len(ACTIONS))
        order = [chosen + 1] + [k + 1 for k in range(len(ACTIONS)) if k != chosen]
        yield json.dumps({
            "_label_cost": 0.0, "_label_probability": p, "_label_Action": chosen + 1, "_labelIndex": chosen,
            "o": [], "a": order, "p": [p] * len(ACTIONS), "EventId": f"seed-{i}",
            "c": {"User": {"id": user}, "_multi": [{"Action": {"t": a}} for a in ACTIONS]},
        })


def write_text(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_model(model_dir: str, name: str, train) -> None:
    """`train(path)` writes a model to `path`; it is renamed to MODEL_DIR/<name>.vw."""
    fd, model_tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".vw.tmp", dir=model_dir)
    os.close(fd)
    try:
        train(model_tmp)
        os.chmod(model_tmp, 0o644)
        os.replace(model_tmp, os.path.join(model_dir, f"{name}.vw"))
    finally:
        if os.path.exists(model_tmp):
            os.unlink(model_tmp)
    print(f"trained {os.path.join(model_dir, name + '.vw')}", file=sys.stderr)


def train_demo(path: str) -> None:
    ws = vowpalwabbit.Workspace(f"--loss_function logistic -q ab --passes 1 -b 18 --random_seed 7 --quiet -f {path}")
    for line in examples(4000):
        ws.learn(line)
    ws.finish()


def train_recommend(path: str) -> None:
    # VW reads the dsjson lines itself (as `vw --dsjson -d FILE` would, and as the trainer will):
    # the features are hashed exactly as the served `--json` model and the trainer hash them.
    with tempfile.TemporaryDirectory(prefix="recommend-") as tmp:
        data = os.path.join(tmp, "seed.dsjson")
        with open(data, "w") as f:
            f.writelines(line + "\n" for line in uninformative_events())
        ws = vowpalwabbit.Workspace(f"{RECOMMEND_ARGS} --dsjson -d {data} --quiet -f {path}")
        pylibvw.vw.run_parser(ws)
        ws.finish()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir = os.path.abspath(argv[0])
    os.makedirs(model_dir, exist_ok=True)

    write_text(os.path.join(model_dir, "demo.json"), json.dumps({"vw_args": ["--link", "logistic"]}) + "\n")
    write_model(model_dir, "demo", train_demo)
    write_text(os.path.join(model_dir, "recommend.json"), json.dumps(RECOMMEND_JSON) + "\n")
    write_model(model_dir, "recommend", train_recommend)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
