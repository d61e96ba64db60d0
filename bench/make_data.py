"""Benchmark data: models trained by the real VW, request sets, reference predictions.

    .venv/bin/python bench/make_data.py [OUT_DIR]      (default bench/out)

Writes, deterministically (fixed seeds), and only when missing or stale:

  OUT/models/logistic.vw    logistic regression: 3 namespaces (user, item, ctx), 30 features
                            per example, -q ui, trained by `bin/vw` on 50,000 synthetic examples
  OUT/models/logistic.json  {"vw_args": ["--link", "logistic"]}: predictions are probabilities
  OUT/models/adf.vw         --cb_explore_adf --epsilon 0.1 -q sa, 10 actions per example
  OUT/data/logistic_requests.txt   10,000 unlabelled examples, one per line
  OUT/data/adf_requests.txt        1,000 unlabelled multiline examples (shared + 10 actions),
                                   separated by a blank line
  OUT/data/logistic_expected.json  the vowpalwabbit package's predictions for those examples
  OUT/data/adf_expected.json       ... and for the ADF examples ([[action, probability], ...])
  OUT/models/loop.vw        --cb_explore_adf --epsilon 0.1 -q UA trained with --dsjson on a synthetic
                            decision log (5 actions); loop.json says "input": "vw_json" (SPEC §8.1)
  OUT/data/loop_requests.json      200 VW JSON contexts; loop_expected.json VW's PMFs for them
                                   (`bin/vw -t --json`)
"""

import json
import math
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VW = os.path.join(ROOT, "bin", "vw")
VERSION = 3  # bump when the data below changes

LOGISTIC_ARGS = ["--link", "logistic"]  # serving args, stored in logistic.json
N_TRAIN = 50_000
N_REQUESTS = 10_000
N_ADF_TRAIN = 5_000
N_ADF_REQUESTS = 1_000
N_ACTIONS = 10


# --- logistic model -----------------------------------------------------------------------
# user: 8 categorical + 2 numeric; item: 7 categorical + 3 numeric; ctx: 8 categorical + 2 numeric.
USER_CAT = [("country", 40), ("lang", 12), ("device", 6), ("os", 8), ("segment", 25),
            ("age_band", 7), ("plan", 4), ("region", 60)]
USER_NUM = ["tenure", "activity"]
ITEM_CAT = [("category", 30), ("brand", 200), ("seller", 500), ("color", 15), ("size", 9),
            ("ship", 5), ("promo", 3)]
ITEM_NUM = ["price", "rating", "age_days"]
CTX_CAT = [("hour", 24), ("dow", 7), ("page", 12), ("slot", 10), ("referrer", 20),
           ("campaign", 80), ("ab", 4), ("network", 5)]
CTX_NUM = ["scroll", "session_len"]


class Truth:
    """A hidden logistic model with a user x item interaction, to draw labels from."""

    def __init__(self, rng: random.Random):
        self.w = {}
        for ns, cats in (("u", USER_CAT), ("i", ITEM_CAT), ("c", CTX_CAT)):
            for name, card in cats:
                for v in range(card):
                    self.w[(ns, name, v)] = rng.gauss(0, 0.35)
        self.num = {name: rng.gauss(0, 0.8) for name in USER_NUM + ITEM_NUM + CTX_NUM}
        # Interaction: segment x category (what -q ui can learn and a linear model cannot).
        self.inter = {(s, c): rng.gauss(0, 1.2) for s in range(25) for c in range(30)}
        self.bias = -1.0

    def score(self, feats) -> float:
        cat, num = feats
        s = self.bias
        for key in cat:
            s += self.w[key]
        for name, value in num.items():
            s += self.num[name] * value
        seg = next(v for ns, n, v in cat if n == "segment")
        categ = next(v for ns, n, v in cat if n == "category")
        return s + self.inter[(seg, categ)]


def draw(rng: random.Random):
    cat = []
    num = {}
    for ns, cats, nums in (("u", USER_CAT, USER_NUM), ("i", ITEM_CAT, ITEM_NUM),
                           ("c", CTX_CAT, CTX_NUM)):
        for name, card in cats:
            # Zipf-like skew: popular values dominate, like real traffic.
            v = min(int(card * rng.random() ** 2), card - 1)
            cat.append((ns, name, v))
        for name in nums:
            num[name] = round(rng.random() * 2 - 1, 4)
    return cat, num


def vw_line(feats, label=None) -> str:
    cat, num = feats
    parts = []
    for ns, full, nums in (("u", "user", USER_NUM), ("i", "item", ITEM_NUM), ("c", "ctx", CTX_NUM)):
        toks = [f"{n}={v}" for s, n, v in cat if s == ns]
        toks += [f"{n}:{num[n]}" for n in nums]
        parts.append(f"|{full} " + " ".join(toks))
    head = "" if label is None else str(label)
    return head + " " + " ".join(parts)


def logistic_data(out: str):
    rng = random.Random(20240601)
    truth = Truth(rng)
    train_path = os.path.join(out, "data", "logistic_train.txt")
    positives = 0
    with open(train_path, "w") as f:
        for _ in range(N_TRAIN):
            feats = draw(rng)
            p = 1 / (1 + math.exp(-truth.score(feats)))
            label = 1 if rng.random() < p else -1
            positives += label == 1
            f.write(vw_line(feats, label) + "\n")
    rng = random.Random(777)
    with open(os.path.join(out, "data", "logistic_requests.txt"), "w") as f:
        for _ in range(N_REQUESTS):
            f.write(vw_line(draw(rng)) + "\n")
    return train_path, positives


# --- ADF (contextual bandit, 10 actions) ---------------------------------------------------
def adf_example(rng: random.Random, actions):
    user = {"seg": rng.randrange(20), "dev": rng.randrange(4), "hour": rng.randrange(24)}
    shared = (f"shared |s seg={user['seg']} dev={user['dev']} hour={user['hour']} "
              f"recency:{round(rng.random(), 4)}")
    lines = [f"|a id={a['id']} topic={a['topic']} len:{a['len']} fresh:{a['fresh']}" for a in actions]
    return user, shared, lines


def adf_data(out: str):
    rng = random.Random(4242)
    catalog = [{"id": k, "topic": k % 4, "len": round(0.2 + 0.08 * k, 2),
                "fresh": round(1 - 0.09 * k, 2)} for k in range(N_ACTIONS)]
    # Click probability depends on (segment, topic): what -q sa can learn.
    affinity = {(s, t): rng.random() * 0.6 for s in range(20) for t in range(4)}
    train_path = os.path.join(out, "data", "adf_train.txt")
    with open(train_path, "w") as f:
        for _ in range(N_ADF_TRAIN):
            user, shared, lines = adf_example(rng, catalog)
            chosen = rng.randrange(N_ACTIONS)  # logged with a uniform policy
            click = rng.random() < affinity[(user["seg"], catalog[chosen]["topic"])]
            cost = -1.0 if click else 0.0
            lines = list(lines)
            lines[chosen] = f"0:{cost}:{1 / N_ACTIONS} " + lines[chosen]
            f.write(shared + "\n" + "\n".join(lines) + "\n\n")
    rng = random.Random(99)
    with open(os.path.join(out, "data", "adf_requests.txt"), "w") as f:
        for _ in range(N_ADF_REQUESTS):
            _, shared, lines = adf_example(rng, catalog)
            f.write(shared + "\n" + "\n".join(lines) + "\n\n")
    return train_path


N_LOOP_ACTIONS = 5
N_LOOP_REQUESTS = 200


def loop_context(rng: random.Random, user: int) -> dict:
    return {"User": {"id": f"u{user}", "dev": f"d{rng.randrange(3)}"},
            "_multi": [{"Action": {"t": f"a{k}", "len": round(0.1 * (k + 1), 2)}} for k in range(N_LOOP_ACTIONS)]}


def loop_data(out: str):
    """A dsjson decision log (uniform logging policy, each user preferring one action) and requests."""
    rng = random.Random(777)
    train_path = os.path.join(out, "data", "loop_train.dsjson")
    with open(train_path, "w") as f:
        for i in range(3000):
            user = rng.randrange(50)
            chosen = rng.randrange(N_LOOP_ACTIONS)
            cost = -1.0 if user % N_LOOP_ACTIONS == chosen else 0.0
            others = [k + 1 for k in range(N_LOOP_ACTIONS) if k != chosen]
            f.write(json.dumps({"_label_cost": cost, "_label_probability": 1 / N_LOOP_ACTIONS,
                                "_label_Action": chosen + 1, "_labelIndex": chosen, "o": [],
                                "a": [chosen + 1] + others, "p": [1 / N_LOOP_ACTIONS] * N_LOOP_ACTIONS,
                                "c": loop_context(rng, user), "EventId": f"train-{i}"}) + "\n")
    rng = random.Random(778)
    requests = [loop_context(rng, rng.randrange(50)) for _ in range(N_LOOP_REQUESTS)]
    with open(os.path.join(out, "data", "loop_requests.json"), "w") as f:
        json.dump(requests, f)
    return train_path, requests


def run_vw(args):
    proc = subprocess.run([VW] + args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"make_data: ERROR: bin/vw {' '.join(args)} failed:\n{proc.stderr}")


def vw_json_pmfs(model: str, contexts: list, out: str, name: str) -> list:
    """VW's own answers for VW JSON contexts: `vw -t --json`, one PMF line (then a blank line) each."""
    lines = os.path.join(out, "data", f"{name}_requests.jsonl")
    with open(lines, "w") as f:
        for ctx in contexts:
            f.write(json.dumps(ctx) + "\n")
    preds = os.path.join(out, "data", f"{name}_preds.txt")
    run_vw(["-i", model, "-t", "--json", "-d", lines, "-p", preds, "--quiet"])
    with open(preds) as f:
        pmfs = [[[int(a), float(p)] for a, p in (pair.split(":") for pair in line.split(","))]
                for line in f.read().split("\n") if line.strip()]
    if len(pmfs) != len(contexts):
        sys.exit(f"make_data: ERROR: vw printed {len(pmfs)} PMFs for {len(contexts)} {name} contexts")
    return pmfs


def read_multiline(path: str):
    with open(path) as f:
        return [block for block in f.read().split("\n\n") if block.strip()]


def main(argv) -> int:
    out = os.path.abspath(argv[0] if argv else os.path.join(ROOT, "bench", "out"))
    stamp = os.path.join(out, "data", ".complete")
    if os.path.exists(stamp) and open(stamp).read().strip() == str(VERSION):
        print(f"make_data: data in {out} is up to date", file=sys.stderr)
        return 0
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    os.makedirs(os.path.join(out, "models"), exist_ok=True)

    import vowpalwabbit  # the reference: the VW engine itself, in-process

    train, positives = logistic_data(out)
    model = os.path.join(out, "models", "logistic.vw")
    run_vw(["-d", train, "-f", model + ".tmp", "--loss_function", "logistic", "-q", "ui",
            "-b", "20", "--passes", "1", "--random_seed", "1", "--quiet"])
    os.replace(model + ".tmp", model)
    with open(os.path.join(out, "models", "logistic.json"), "w") as f:
        json.dump({"vw_args": LOGISTIC_ARGS}, f)
        f.write("\n")
    ws = vowpalwabbit.Workspace(arg_list=["-i", model, "-t", "--quiet"] + LOGISTIC_ARGS)
    with open(os.path.join(out, "data", "logistic_requests.txt")) as f:
        requests = f.read().splitlines()
    expected = [ws.predict(line) for line in requests]
    ws.finish()
    with open(os.path.join(out, "data", "logistic_expected.json"), "w") as f:
        json.dump(expected, f)

    train = adf_data(out)
    model = os.path.join(out, "models", "adf.vw")
    run_vw(["-d", train, "-f", model + ".tmp", "--cb_explore_adf", "--epsilon", "0.1",
            "-q", "sa", "--random_seed", "1", "--quiet"])
    os.replace(model + ".tmp", model)
    ws = vowpalwabbit.Workspace(arg_list=["-i", model, "-t", "--quiet"])
    expected = []
    for block in read_multiline(os.path.join(out, "data", "adf_requests.txt")):
        probs = ws.predict(block.split("\n"))  # a pmf indexed by action
        expected.append([[a, p] for a, p in enumerate(probs)])
    ws.finish()
    with open(os.path.join(out, "data", "adf_expected.json"), "w") as f:
        json.dump(expected, f)

    train, contexts = loop_data(out)
    model = os.path.join(out, "models", "loop.vw")
    run_vw(["--dsjson", "-d", train, "-f", model + ".tmp", "--cb_explore_adf", "--epsilon", "0.1",
            "-q", "UA", "--random_seed", "1", "--quiet"])
    os.replace(model + ".tmp", model)
    with open(os.path.join(out, "models", "loop.json"), "w") as f:
        json.dump({"input": "vw_json"}, f)
        f.write("\n")
    with open(os.path.join(out, "data", "loop_expected.json"), "w") as f:
        json.dump(vw_json_pmfs(model, contexts, out, "loop"), f)
    # The same contexts as Personalizer rank requests (SPEC §9) on the same model, and VW's PMFs for
    # the VW JSON the server maps them to (`FromUrl` + `_multi` of `_tag` and `j`), computed by vw.
    bodies, mapped = [], []
    for ctx in contexts:
        actions = [{"id": f"a{k}", "features": [action]} for k, action in enumerate(ctx["_multi"])]
        bodies.append({"contextFeatures": [{"User": ctx["User"]}], "actions": actions})
        mapped.append({"FromUrl": [{"User": ctx["User"]}],
                       "_multi": [{"_tag": a["id"], "j": a["features"]} for a in actions]})
    with open(os.path.join(out, "data", "personalizer_requests.json"), "w") as f:
        json.dump(bodies, f)
    with open(os.path.join(out, "data", "personalizer_expected.json"), "w") as f:
        json.dump(vw_json_pmfs(model, mapped, out, "personalizer"), f)

    feats = len(requests[0].split()) - 3
    print(f"make_data: logistic model from {N_TRAIN} examples ({positives} positive, "
          f"{feats} features each + -q ui), adf model ({N_ACTIONS} actions) in {out}/models",
          file=sys.stderr)
    with open(stamp, "w") as f:
        f.write(f"{VERSION}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
