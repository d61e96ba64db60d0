#!/usr/bin/env python3
"""Simulate users of the `recommend` demo model (README "Learning loop demo"); stdlib only.

    make run                          # in another terminal: trains and serves `recommend`
    python3 scripts/simulate_loop.py  # [--url URL] [--seconds 60] [--rate N] [--every 200]

A synthetic world: four users, each liking one of four actions best. Each decision asks
`:rank` for the user's context, "shows" the chosen action, and sends `:reward` 1.0 when it is
the user's best action, else 0.0. Every --every decisions it prints the share of best actions
in that window, the model version that answered, and the loop's published updates. While the
model learns nothing the rate stays near 1/4; as the trainer publishes updates it climbs toward
1 - epsilon * 3/4 = 0.85 (epsilon 0.2: the model still explores).
"""

import argparse
import json
import os
import random
import time
import urllib.error
import urllib.request

BEST = {"alice": "sports", "bob": "news", "carol": "music", "dave": "movies"}
ACTIONS = ["sports", "news", "music", "movies"]


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def report(url, start, n, rate, version):
    updates = call(url + "/loop").get("updates", "-")  # "-": this server has no trainer
    print(f"{time.monotonic() - start:6.1f}s  decisions {n:6d}  best-action rate {rate:.2f}"
          f"  version {version}  updates {updates}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/v1/models/recommend")
    ap.add_argument("--seconds", type=float, default=60, help="how long to run (default 60)")
    ap.add_argument("--rate", type=float, default=0, help="at most this many decisions per second (0: no limit)")
    ap.add_argument("--every", type=int, default=200, help="decisions per printed window (default 200)")
    args = ap.parse_args()
    rng, start, hits, n, window = random.Random(1), time.monotonic(), 0, 0, 0
    while time.monotonic() - start < args.seconds:
        user = rng.choice(list(BEST))
        context = {"User": {"id": user}, "_multi": [{"Action": {"t": a}} for a in ACTIONS]}
        answer = call(args.url + ":rank", {"context": context})
        good = ACTIONS[answer["action"]] == BEST[user]
        call(args.url + ":reward", {"event_id": answer["event_id"], "reward": 1.0 if good else 0.0})
        hits, n, window = hits + good, n + 1, window + 1
        if window == args.every:
            report(args.url, start, n, hits / window, answer["version"])
            hits, window = 0, 0
        if args.rate > 0:
            time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
    if window:  # the last, partial window
        report(args.url, start, n, hits / window, answer["version"])
    print(f"done: {n} decisions in {time.monotonic() - start:.1f}s", flush=True)


if __name__ == "__main__":
    try:
        main()
    except urllib.error.URLError as error:  # HTTPError too: show the server's answer
        body = error.read().decode(errors="replace") if isinstance(error, urllib.error.HTTPError) else ""
        raise SystemExit(f"simulate_loop: {error} {body}".strip())
    except KeyboardInterrupt:
        pass
