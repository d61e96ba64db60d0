#!/usr/bin/env python3
"""Convert the Open Bandit Dataset's small sample into vwfcgi joined dsjson lines; stdlib only.

    pip download obp==0.4.1 --no-deps --no-binary :all: -d /tmp/obp
    python3 scripts/obd_to_dsjson.py --sdist /tmp/obp/obp-0.4.1.tar.gz --state ./state --model obd
    vwfcgi evaluate --state ./state --model obd --policy "--cb_explore_adf --epsilon 0.1 -q UI"

The Open Bandit Dataset (ZOZO, Inc.; Saito et al., "Open Bandit Dataset and Pipeline", NeurIPS 2021
Datasets and Benchmarks) is licensed CC BY 4.0. Its sample ships inside the `obp` source distribution:
`obp/dataset/obd/<policy>/<campaign>/<campaign>.csv` (10,000 logged impressions: timestamp, item_id,
position, click, propensity_score, user features) and `item_context.csv` (80 items' features).

Each impression becomes one joined decision as vwfcgi's joiner writes it (SPEC §8.5): the context is the
user's four features and the slot position (shared), and the 80 items as actions (`_multi`, item id and
item_feature_0); the chosen action is the shown item with the logged propensity, the reward the click.
The other actions share the remaining probability evenly (the sample's policy is uniform random, so they
get exactly the logged propensity each). Lines are written in the CSV's order, 1,000 per joined file.
"""

import argparse
import csv
import io
import json
import tarfile
from pathlib import Path


def read_csvs(sdist: Path, policy: str, campaign: str) -> tuple[list[dict], list[dict]]:
    base = f"obp/dataset/obd/{policy}/{campaign}/"
    with tarfile.open(sdist) as tar:
        def rows(name: str) -> list[dict]:
            member = next(m for m in tar.getmembers() if m.name.endswith(base + name))
            return list(csv.DictReader(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8")))
        return rows(f"{campaign}.csv"), rows("item_context.csv")


def timestamp(text: str) -> str:
    """`2019-11-24 00:00:34.762830+00:00` -> `2019-11-24T00:00:34.762Z` (the log's format)."""
    date, time = text.replace("+00:00", "").split(" ")
    seconds, _, fraction = time.partition(".")
    return f"{date}T{seconds}.{(fraction + '000')[:3]}Z"


def convert(impressions: list[dict], items: list[dict]) -> list[str]:
    items = sorted(items, key=lambda row: int(row["item_id"]))
    actions = [{"I": {"id": row["item_id"], "f0": round(float(row["item_feature_0"]), 6)}} for row in items]
    lines = []
    for index, row in enumerate(impressions):
        chosen = int(row["item_id"])
        p = float(row["propensity_score"])
        rest = (1 - p) / (len(items) - 1)
        click = float(row["click"])
        order = [chosen] + [k for k in range(len(items)) if k != chosen]
        user = {f"f{k}": row[f"user_feature_{k}"] for k in range(4)}
        line = {
            "_label_cost": -click if click else 0.0, "_label_probability": p, "_label_Action": chosen + 1,
            "_labelIndex": chosen, "o": [{"v": click}], "Timestamp": timestamp(row["timestamp"]), "Version": "1",
            "EventId": f"obd-{index}", "a": [k + 1 for k in order],
            "c": {"U": user, "P": {"pos": row["position"]}, "_multi": actions},
            "p": [p] + [rest] * (len(items) - 1), "VWState": {"m": "obd"},
        }
        lines.append(json.dumps(line, separators=(",", ":")))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", type=Path, required=True, help="the obp source distribution (obp-0.4.1.tar.gz)")
    ap.add_argument("--state", type=Path, required=True, help="state directory to write <model>/joined/ into")
    ap.add_argument("--model", default="obd")
    ap.add_argument("--policy", default="random", choices=["random", "bts"], help="the logging policy's sample")
    ap.add_argument("--campaign", default="all", choices=["all", "men", "women"])
    args = ap.parse_args()
    impressions, items = read_csvs(args.sdist, args.policy, args.campaign)
    lines = convert(impressions, items)
    joined = args.state / args.model / "joined"
    joined.mkdir(parents=True, exist_ok=True)
    if any(joined.iterdir()):
        raise SystemExit(f"obd_to_dsjson: {joined} is not empty")
    for start in range(0, len(lines), 1000):
        (joined / f"{start // 1000 + 1}.dsjson").write_text("\n".join(lines[start:start + 1000]) + "\n")
    clicks = sum(float(row["click"]) for row in impressions)
    print(f"{len(lines)} impressions, {len(items)} items, CTR {clicks / len(lines):.6f} -> {joined}")


if __name__ == "__main__":
    main()
