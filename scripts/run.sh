#!/usr/bin/env bash
# Runs vwfcgi + nginx in the foreground (what `make run` runs) until SIGINT/SIGTERM.
#
# Environment (defaults in brackets):
#   MODEL_DIR [./models]  models to serve; the demo models (demo, recommend: scripts/train_demo.py)
#                         are trained into it when it has no *.vw
#   PORT [8080]           nginx's port (on LISTEN_ADDR [127.0.0.1])
#   SHARDS [1]            vw processes per model
#   STATE_DIR [./state]   the learning loop's event logs and joined events (SPEC §8.4)
#   RUN_DIR [./run/PORT]  state: vwfcgi.sock, vwfcgi.log, nginx/ (conf, pid, logs, temp dirs);
#                         one per port, so that several instances run side by side
#   VWFCGI_BIN [.build/release/vwfcgi]   the server binary
#   VW_COMMAND [bin/vw]   the vw command vwfcgi starts (bin/vw runs VW from the .venv package)
#   VWFCGI_ARGS           extra arguments for `vwfcgi serve` (e.g. "--threads 32 --timeout 5")
#   MAX_BODY [8m], WORKERS [2], KEEPALIVE [64]: see nginx/render.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$(pwd -P)/$1" ;; esac; }
say() { echo "run: $*" >&2; }
die() { echo "run: ERROR: $*" >&2; exit 1; }

PORT=${PORT:-8080}
SHARDS=${SHARDS:-1}
LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1}
MODEL_DIR=$(abspath "${MODEL_DIR:-models}")
RUN_DIR=$(abspath "${RUN_DIR:-run/$PORT}")
STATE_DIR=$(abspath "${STATE_DIR:-state}")
VWFCGI_BIN=$(abspath "${VWFCGI_BIN:-.build/release/vwfcgi}")
VW_COMMAND=${VW_COMMAND:-$ROOT/bin/vw}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
SOCKET=$RUN_DIR/vwfcgi.sock
NGINX_PREFIX=$RUN_DIR/nginx
NGINX_CONF=$NGINX_PREFIX/nginx.conf
VWFCGI_LOG=$RUN_DIR/vwfcgi.log

[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive number, got '$SHARDS'"
[ -x "$VWFCGI_BIN" ] || die "no vwfcgi binary at $VWFCGI_BIN (run 'make build', or set VWFCGI_BIN)"
command -v nginx >/dev/null || die "nginx is not installed (run scripts/install-deps.sh)"
command -v curl >/dev/null || die "curl is not installed (run scripts/install-deps.sh)"
[ -x "$PYTHON" ] || die "no Python venv at $PYTHON (run scripts/install-deps.sh)"
[ ${#SOCKET} -lt 100 ] || die "socket path $SOCKET is too long for a unix socket (set RUN_DIR to a shorter path)"

# --- models ---------------------------------------------------------------
mkdir -p "$MODEL_DIR" || die "cannot create MODEL_DIR $MODEL_DIR"
if ! compgen -G "$MODEL_DIR/*.vw" >/dev/null; then
    say "no *.vw in $MODEL_DIR: training the demo model"
    "$PYTHON" "$ROOT/scripts/train_demo.py" "$MODEL_DIR" || die "training the demo model failed"
fi

# --- state directory ------------------------------------------------------
mkdir -p "$RUN_DIR" "$NGINX_PREFIX" || die "cannot create $RUN_DIR"
if [ -e "$SOCKET" ]; then
    # A socket left by a killed run is removed; one that still answers belongs to a live instance.
    if "$PYTHON" - "$SOCKET" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
try:
    s.connect(sys.argv[1])
except OSError:
    sys.exit(1)
PY
    then
        die "$SOCKET is in use by a running vwfcgi (another 'make run' with PORT=$PORT?); stop it or set PORT/RUN_DIR"
    fi
    rm -f "$SOCKET"
fi

PREFIX=$NGINX_PREFIX SOCKET=$SOCKET PORT=$PORT LISTEN_ADDR=$LISTEN_ADDR \
    "$ROOT/nginx/render.sh" > "$NGINX_CONF.new" || die "rendering the nginx config failed"
mv "$NGINX_CONF.new" "$NGINX_CONF"
nginx -e stderr -t -q -p "$NGINX_PREFIX" -c "$NGINX_CONF" || die "nginx rejects $NGINX_CONF"

# --- processes ------------------------------------------------------------
vwfcgi_pid=
nginx_pid=

tails() {
    echo "---- last lines of $VWFCGI_LOG ----" >&2
    tail -n 30 "$VWFCGI_LOG" >&2 2>/dev/null || true
    echo "---- last lines of $NGINX_PREFIX/error.log ----" >&2
    tail -n 30 "$NGINX_PREFIX/error.log" >&2 2>/dev/null || true
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Waits up to $2 seconds for PID $1 to exit, then kills it.
reap() {
    local pid=$1 seconds=$2 i
    [ -n "$pid" ] || return 0
    for ((i = 0; i < seconds * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "pid $pid did not stop within ${seconds}s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# nginx first (QUIT: finish the requests it holds), then vwfcgi (TERM: drain, stop vw, exit 0).
stop_all() {
    trap '' INT TERM HUP
    if alive "$nginx_pid"; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
    reap "$nginx_pid" 15
    if alive "$vwfcgi_pid"; then kill -TERM "$vwfcgi_pid" 2>/dev/null || true; fi
    reap "$vwfcgi_pid" 30
}

on_signal() {
    say "stopping"
    stop_all
    say "stopped"
    exit 0
}
trap on_signal INT TERM HUP

# vwfcgi's log goes to the terminal and to $VWFCGI_LOG. tee is this script's child (not vwfcgi's)
# and ignores Ctrl-C, so that it still carries vwfcgi's last lines while vwfcgi drains.
exec 3> >(trap '' INT TERM HUP; exec tee -a "$VWFCGI_LOG" >&2)
# Both run in their own sessions: a Ctrl-C reaches this script only, which stops them in order
# (nginx gracefully first, then vwfcgi, which drains and stops its vw children).
# shellcheck disable=SC2086 # VWFCGI_ARGS is a list of words on purpose
setsid "$VWFCGI_BIN" serve --models "$MODEL_DIR" --socket "$SOCKET" --shards "$SHARDS" \
    --state-dir "$STATE_DIR" --vw-command "$VW_COMMAND" ${VWFCGI_ARGS:-} >&3 2>&3 3>&- </dev/null &
vwfcgi_pid=$!
setsid nginx -e stderr -p "$NGINX_PREFIX" -c "$NGINX_CONF" -g 'daemon off;' 3>&- </dev/null &
nginx_pid=$!

url=http://$LISTEN_ADDR:$PORT
[ "$LISTEN_ADDR" = 0.0.0.0 ] && url=http://127.0.0.1:$PORT
deadline=$((SECONDS + ${READY_TIMEOUT:-30}))
# vwfcgi opens its socket at start-up; only then ask through nginx.
until [ -S "$SOCKET" ] && curl -fsS -o /dev/null --max-time 2 "$url/healthz" 2>/dev/null; do
    if ! alive "$vwfcgi_pid" || ! alive "$nginx_pid" || [ $SECONDS -ge $deadline ]; then
        alive "$vwfcgi_pid" || say "vwfcgi exited during start-up"
        alive "$nginx_pid" || say "nginx exited during start-up (port $PORT in use?)"
        [ $SECONDS -ge $deadline ] && say "$url/healthz did not answer within ${READY_TIMEOUT:-30}s"
        stop_all
        tails
        die "start-up failed"
    fi
    sleep 0.2
done
# vwfcgi answers /healthz while its models still load; /readyz says 200 once every model present
# at start-up was tried and one serves. Within the same deadline; a directory where no model loads
# is still served (its models' status says why), with a warning.
until curl -fsS -o /dev/null --max-time 2 "$url/readyz" 2>/dev/null; do
    if ! alive "$vwfcgi_pid" || ! alive "$nginx_pid"; then
        say "vwfcgi or nginx exited during start-up"
        stop_all
        tails
        die "start-up failed"
    fi
    if [ $SECONDS -ge $deadline ]; then
        say "WARNING: $url/readyz is not 200 within ${READY_TIMEOUT:-30}s: no model serves yet (see $url/v1/models)"
        break
    fi
    sleep 0.2
done

if [ -f "$MODEL_DIR/demo.vw" ]; then
    example="curl -s -X POST $url/v1/models/demo:predict -H 'Content-Type: application/json' -d '{\"instances\": [\" |a x:0.5 |b y:0.2\"]}'"
else
    first=$(basename "$(compgen -G "$MODEL_DIR/*.vw" | head -n 1)" .vw)
    example="curl -s -X POST $url/v1/models/$first:predict -H 'Content-Type: application/json' -d '{\"instances\": [\"<VW example>\"]}'"
fi
loop_demo=
if [ -f "$MODEL_DIR/recommend.vw" ]; then
    loop_demo="
  learning loop demo (README): python3 scripts/simulate_loop.py --url $url/v1/models/recommend"
fi
cat >&2 <<MSG

vwfcgi is serving $MODEL_DIR at $url  (vwfcgi pid $vwfcgi_pid, nginx pid $nginx_pid)
  logs: $VWFCGI_LOG, $NGINX_PREFIX/access.log, $NGINX_PREFIX/error.log
  try:  $example
        curl -s $url/v1/models$loop_demo
  Ctrl-C stops both.

MSG

# Returns when either process exits (a signal runs on_signal instead).
status=0
wait -n "$vwfcgi_pid" "$nginx_pid" || status=$?
if alive "$vwfcgi_pid"; then say "nginx exited unexpectedly (status $status)"; else say "vwfcgi exited unexpectedly (status $status)"; fi
stop_all
tails
exit 1
