#!/bin/sh
# The evaluation shown in the README and docs/evaluation.png: 10,000 joined events of the simulate_loop.py world
# (seed 1, written by the generator of Tests/e2e/test_evaluate.py), three candidates, the plot and the metrics file.
#
#   scripts/evaluation_example.sh [STATE_DIR] [PLOT]     (defaults: a temporary directory, docs/evaluation.png)
set -eu
cd "$(dirname "$0")/.."
state=${1:-$(mktemp -d)}
plot=${2:-docs/evaluation.png}
rm -rf "$state/m"
.venv/bin/python -c 'import sys; sys.path.insert(0, "Tests/e2e"); from pathlib import Path; from test_evaluate import write_world; write_world(Path(sys.argv[1]), "m", 1, events=10000)' "$state"
.build/release/vwfcgi evaluate --state "$state" --model m --vw-command "$PWD/bin/vw" \
    --policy "--cb_explore_adf --epsilon 0.2 -q UA" --policy "--cb_explore_adf --epsilon 0.05 -q UA" \
    --policy "--cb_explore_adf --epsilon 0.2" --windows 10 --plot "$plot" --metrics-file "$state/evaluation.prom"
echo "plot: $plot; metrics: $state/evaluation.prom"
