"""Two vwfcgi binaries, one machine, interleaved rows: is a change within noise?

    .venv/bin/python bench/ab.py BASELINE_BINARY [CANDIDATE_BINARY] [--rounds 3] [--duration 4]

Both servers run at once behind their own nginx (same models, request sets and checks as
bench/run.py); every row is measured on A then B, then B then A in the next round, ... for `--rounds` rounds,
so a slow spell of the machine hits both. Prints per row the median req/s and examples/s of each and
the ratio B/A; CANDIDATE defaults to .build/release/vwfcgi. A benchmark, not a test: it fails only
when a server gives a wrong answer.
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: servers, request sets, wrk rows)

PLAN = [(("logistic", 1, "json"), (8, 64)), (("logistic", 1, "text"), (8, 64)),
        (("logistic", run.BATCH, "json"), (8,)), (("logistic", run.BATCH, "text"), (8,)),
        (("adf", 1, "json"), (8,))]


def start(binary: str, data, run_dir: str, name: str):
    os.environ["VWFCGI_BIN"] = binary
    stack = run.VwfcgiStack(data, os.path.join(run_dir, name), 1)
    stack.name = name
    return stack


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline")
    parser.add_argument("candidate", nargs="?", default=os.path.join(run.ROOT, ".build", "release", "vwfcgi"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(run.BENCH, "out", "ab"))
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    run_dir = os.path.join(out, "run")
    for d in (os.path.join(run_dir, "A"), os.path.join(run_dir, "B"), os.path.join(out, "wrk")):
        os.makedirs(d, exist_ok=True)
    run.subprocess.run([run.PY, os.path.join(run.BENCH, "make_data.py"), out], check=True)
    data = run.Data(out)
    sets = run.request_sets(data)
    stacks = []
    try:
        for name, binary in (("A", args.baseline), ("B", args.candidate)):
            stack = start(binary, data, run_dir, name)
            stacks.append(stack)
            for key, _ in PLAN:
                run.check_server(name, stack.port, sets[key], stack.path(key[0]))
        results: dict = {}
        for round_ in range(args.rounds):
            for key, conns in PLAN:
                for c in conns:
                    # Alternate who goes first, so neither always follows the other's load.
                    for stack in (stacks if round_ % 2 == 0 else stacks[::-1]):
                        rows: list = []
                        row = run.measure(stack, sets[key], c, args, out, rows)
                        results.setdefault((key, c, stack.name), []).append(row)
        print(f"\nmedian of {args.rounds} interleaved rounds, {args.duration}s each; A = {args.baseline}, B = {args.candidate}")
        print(f"{'row':28} {'A req/s':>10} {'B req/s':>10} {'A ex/s':>10} {'B ex/s':>10} {'B/A':>6}")
        for key, conns in PLAN:
            for c in conns:
                a = statistics.median(r["examples_per_s"] for r in results[(key, c, "A")])
                b = statistics.median(r["examples_per_s"] for r in results[(key, c, "B")])
                ra = statistics.median(r["req_per_s"] for r in results[(key, c, "A")])
                rb = statistics.median(r["req_per_s"] for r in results[(key, c, "B")])
                label = f"{key[0]} {key[1]} ex {key[2]} c={c}"
                print(f"{label:28} {ra:>10,.0f} {rb:>10,.0f} {a:>10,.0f} {b:>10,.0f} {b / a:>6.2f}")
    finally:
        for stack in stacks:
            stack.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except run.BenchError as error:
        print(f"bench/ab.py: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        run.stop_all()
