#!/usr/bin/env bash
# Container entrypoint (under tini): runs nginx and/or vwfcgi in the foreground.
#
#   entrypoint.sh [all]     nginx + vwfcgi in one container (docker run)
#   entrypoint.sh vwfcgi    vwfcgi only (Kubernetes container "vwfcgi")
#   entrypoint.sh nginx     nginx only  (Kubernetes container "nginx")
#   entrypoint.sh train     `vwfcgi train --state $STATE_DIR --models $MODEL_DIR` (the external
#                           trainer, SPEC §8.7; Kubernetes Deployment "vwfcgi-trainer"), exec'd
#   entrypoint.sh CMD...    runs CMD (e.g. bash, vw, vwfcgi --help)
#
# SIGTERM/SIGINT: nginx gets QUIT (finishes the requests it holds), then vwfcgi gets TERM
# (drains, stops its vw processes, exits 0). When either process exits on its own, the other
# is stopped and the container exits non-zero, so the orchestrator restarts it. In `all` mode
# nginx starts only once vwfcgi listens on its socket: when vwfcgi cannot start (a socket it
# cannot bind, a bad argument), the container exits at once with vwfcgi's status; when vwfcgi
# dies later, nginx gets TERM (it can only answer 502 now), not a graceful QUIT.
#
# Environment (defaults in brackets):
#   MODEL_DIR [/models]          models served (a volume; hot reload on file drop)
#   SOCKET [/run/vwfcgi/vwfcgi.sock]  FastCGI unix socket between nginx and vwfcgi
#   PORT [8080], LISTEN_ADDR [0.0.0.0]  where nginx listens
#   NGINX_CONF                   a ready nginx.conf (the Kubernetes ConfigMap); when unset, one is
#                                rendered from nginx/nginx.conf.template into NGINX_PREFIX with
#                                PORT, LISTEN_ADDR, SOCKET, MAX_BODY, WORKERS, KEEPALIVE, and DOCS_DIR
#                                [<app>/docs] (where nginx reads docs/openapi.json for GET /openapi.json)
#   NGINX_PREFIX [$TMPDIR/nginx or /tmp/nginx]  nginx's pid and temp dirs (must match NGINX_CONF)
#   NGINX_USER                   see nginx/render.sh (default: none as non-root, root as root)
#   SHARDS [1], VWFCGI_GRACE [10], VWFCGI_ARGS (extra `vwfcgi serve` / `vwfcgi train` arguments)
#   STAGING_DIR                  vwfcgi --staging-dir (default: a fresh dir under $TMPDIR or /tmp)
#   STATE_DIR [/state]           vwfcgi --state-dir: the learning loop's event logs (mount a volume)
#   INSTANCE_ID [host name]      vwfcgi --instance-id: names this pod's log segments
#   STATE_MAX_BYTES              vwfcgi --state-max-bytes (serve and train): the state directory's
#                                budget (e.g. 1536M), below the volume's size (issue 24; DEPLOY.md)
#   METRICS_LISTEN               train only: vwfcgi train --metrics-listen (host:port of GET /metrics)
#   API_KEY_FILE                 vwfcgi --api-key-file: one API key per line (a Kubernetes Secret);
#                                the learning loop's write routes then need one (SPEC §8.9)
#   VWFCGI_BIN [vwfcgi on PATH], VWFCGI_VW_COMMAND [<app>/bin/vw]
#   NGINX_STOP_TIMEOUT [15]      seconds nginx may take to finish its requests on stop
#   LOG_FORMAT [json]            json: every line this container writes is one JSON object (vwfcgi
#                                --log-format json, nginx's access log, these lines; nginx's own
#                                error log stays nginx's text); text: as `make run` writes them
set -euo pipefail

APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

LOG_FORMAT=${LOG_FORMAT:-json}

# One log line: `{"ts","level","label":"entrypoint","msg"}` (LOG_FORMAT=json) or `entrypoint: msg`.
log_line() {
    local level=$1 text=$2
    if [ "$LOG_FORMAT" = json ]; then
        text=${text//\\/\\\\}
        text=${text//\"/\\\"}
        text=${text//$'\t'/\\t}
        text=${text//$'\n'/\\n}
        text=${text//$'\r'/\\r}
        printf '{"ts":"%s","level":"%s","label":"entrypoint","msg":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$level" "$text" >&2
    else
        echo "entrypoint: $([ "$level" = info ] || echo "ERROR: ")$text" >&2
    fi
}
say() { log_line info "$*"; }
die() { log_line error "$*"; exit 1; }
if ! [[ "$LOG_FORMAT" =~ ^(json|text)$ ]]; then
    given=$LOG_FORMAT
    LOG_FORMAT=text
    die "LOG_FORMAT must be json or text, got '$given'"
fi

MODEL_DIR=${MODEL_DIR:-/models}
SOCKET=${SOCKET:-/run/vwfcgi/vwfcgi.sock}
PORT=${PORT:-8080}
LISTEN_ADDR=${LISTEN_ADDR:-0.0.0.0}
NGINX_PREFIX=${NGINX_PREFIX:-${TMPDIR:-/tmp}/nginx}
NGINX_CONF=${NGINX_CONF:-}
SHARDS=${SHARDS:-1}
VWFCGI_GRACE=${VWFCGI_GRACE:-10}
STATE_DIR=${STATE_DIR:-/state}
VWFCGI_BIN=${VWFCGI_BIN:-$(command -v vwfcgi || echo "$APP/bin/vwfcgi")}
NGINX_STOP_TIMEOUT=${NGINX_STOP_TIMEOUT:-15}
export VWFCGI_VW_COMMAND=${VWFCGI_VW_COMMAND:-$APP/bin/vw}

mode=${1:-all}
case "$mode" in
    all | vwfcgi | nginx | train) ;;
    *) exec "$@" ;;
esac
[ $# -le 1 ] || die "'$mode' takes no arguments (use VWFCGI_ARGS for vwfcgi's)"

if [ "$mode" = train ]; then
    [ -x "$VWFCGI_BIN" ] || die "no vwfcgi binary at '$VWFCGI_BIN'"
    mkdir -p "$STATE_DIR" "$MODEL_DIR" || die "cannot create STATE_DIR $STATE_DIR or MODEL_DIR $MODEL_DIR"
    args=(train --state "$STATE_DIR" --models "$MODEL_DIR" --log-format "$LOG_FORMAT")
    [ -z "${INSTANCE_ID:-}" ] || args+=(--instance-id "$INSTANCE_ID")
    [ -z "${STATE_MAX_BYTES:-}" ] || args+=(--state-max-bytes "$STATE_MAX_BYTES")
    [ -z "${METRICS_LISTEN:-}" ] || args+=(--metrics-listen "$METRICS_LISTEN")
    # shellcheck disable=SC2206 # VWFCGI_ARGS is a list of words on purpose
    args+=(${VWFCGI_ARGS:-})
    say "exec vwfcgi ${args[*]}"
    # exec: SIGTERM (from tini) reaches the trainer itself, which stops after its current update.
    exec "$VWFCGI_BIN" "${args[@]}"
fi
[[ "$VWFCGI_GRACE" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "VWFCGI_GRACE must be seconds, got '$VWFCGI_GRACE'"
[[ "$NGINX_STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "NGINX_STOP_TIMEOUT must be whole seconds, got '$NGINX_STOP_TIMEOUT'"

vwfcgi_pid=
nginx_pid=
alive() { [ -n "$1" ] && kill -0 "$1" 2> /dev/null; }

# Waits up to $2 seconds for child $1 to exit, then kills it.
reap() {
    local pid=$1 seconds=$2 i
    [ -n "$pid" ] || return 0
    for ((i = 0; i < seconds * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "pid $pid did not stop within ${seconds}s: killing it"
        kill -KILL "$pid" 2> /dev/null || true
    fi
    wait "$pid" 2> /dev/null || true
}

stop_all() {
    trap '' INT TERM
    if alive "$nginx_pid"; then
        if [ -n "$vwfcgi_pid" ] && ! alive "$vwfcgi_pid"; then
            # Nothing nginx holds can be answered any more. (A background job of this shell starts
            # with QUIT ignored until nginx installs its handlers: TERM is never ignored.)
            kill -TERM "$nginx_pid" 2> /dev/null || true
            reap "$nginx_pid" 5
        else
            kill -QUIT "$nginx_pid" 2> /dev/null || true
            reap "$nginx_pid" "$NGINX_STOP_TIMEOUT"
        fi
    fi
    if alive "$vwfcgi_pid"; then
        kill -TERM "$vwfcgi_pid" 2> /dev/null || true
        # vwfcgi exits within its grace period; a little more before the KILL.
        reap "$vwfcgi_pid" $((${VWFCGI_GRACE%.*} + 5))
    fi
}

start_vwfcgi() {
    [ -x "$VWFCGI_BIN" ] || die "no vwfcgi binary at '$VWFCGI_BIN'"
    [ -d "$MODEL_DIR" ] || die "MODEL_DIR $MODEL_DIR does not exist (mount the models volume)"
    mkdir -p "$(dirname "$SOCKET")" || die "cannot create the socket directory of $SOCKET"
    local args=(serve --models "$MODEL_DIR" --socket "$SOCKET" --shards "$SHARDS" --grace "$VWFCGI_GRACE"
        --log-format "$LOG_FORMAT")
    [ -z "${STAGING_DIR:-}" ] || { mkdir -p "$STAGING_DIR" && args+=(--staging-dir "$STAGING_DIR"); }
    # The state directory is created by vwfcgi on the first decision or reward (503 if it cannot be).
    args+=(--state-dir "$STATE_DIR")
    [ -z "${INSTANCE_ID:-}" ] || args+=(--instance-id "$INSTANCE_ID")
    [ -z "${STATE_MAX_BYTES:-}" ] || args+=(--state-max-bytes "$STATE_MAX_BYTES")
    [ -z "${API_KEY_FILE:-}" ] || args+=(--api-key-file "$API_KEY_FILE")
    # shellcheck disable=SC2206 # VWFCGI_ARGS is a list of words on purpose
    args+=(${VWFCGI_ARGS:-})
    say "starting vwfcgi ${args[*]}"
    "$VWFCGI_BIN" "${args[@]}" &
    vwfcgi_pid=$!
}

# Waits until vwfcgi listens on $SOCKET (it opens it before loading any model); exits the
# container at once, with vwfcgi's status, when vwfcgi exits first.
await_vwfcgi_socket() {
    local i status=0
    for ((i = 0; i < 300; i++)); do
        if ! alive "$vwfcgi_pid"; then
            wait "$vwfcgi_pid" || status=$?
            [ "$status" -ne 0 ] || status=1
            say "vwfcgi exited before listening on $SOCKET (status $status): not starting nginx"
            exit "$status"
        fi
        [ -S "$SOCKET" ] && return 0
        sleep 0.1
    done
    say "vwfcgi did not listen on $SOCKET within 30 s: stopping it"
    stop_all
    exit 1
}

start_nginx() {
    command -v nginx > /dev/null || die "nginx is not installed"
    mkdir -p "$NGINX_PREFIX" || die "cannot create NGINX_PREFIX $NGINX_PREFIX"
    local conf=$NGINX_CONF
    if [ -z "$conf" ]; then
        conf=$NGINX_PREFIX/nginx.conf
        PREFIX=$NGINX_PREFIX SOCKET=$SOCKET PORT=$PORT LISTEN_ADDR=$LISTEN_ADDR \
            ERROR_LOG=${ERROR_LOG:-stderr} ACCESS_LOG=${ACCESS_LOG:-/dev/stdout} ACCESS_LOG_FORMAT=$LOG_FORMAT \
            "$APP/nginx/render.sh" > "$conf.new" || die "rendering the nginx config failed"
        mv "$conf.new" "$conf"
    fi
    [ -r "$conf" ] || die "nginx config $conf is not readable"
    nginx -e stderr -t -q -p "$NGINX_PREFIX" -c "$conf" || die "nginx rejects $conf"
    say "starting nginx -c $conf"
    nginx -e stderr -p "$NGINX_PREFIX" -c "$conf" -g 'daemon off;' &
    nginx_pid=$!
}

# shellcheck disable=SC2317 # called by the trap
on_signal() {
    say "stopping ($mode)"
    stop_all
    say "stopped"
    exit 0
}
trap on_signal INT TERM

case "$mode" in
    all) start_vwfcgi; await_vwfcgi_socket; start_nginx ;;
    vwfcgi) start_vwfcgi ;;
    nginx) start_nginx ;;
esac

# Returns when a child exits (a signal runs on_signal instead).
status=0
pids=()
[ -z "$vwfcgi_pid" ] || pids+=("$vwfcgi_pid")
[ -z "$nginx_pid" ] || pids+=("$nginx_pid")
wait -n "${pids[@]}" || status=$?
if [ -n "$vwfcgi_pid" ] && ! alive "$vwfcgi_pid"; then
    say "vwfcgi exited (status $status)"
else
    say "nginx exited (status $status)"
fi
stop_all
[ "$status" -ne 0 ] || status=1
exit "$status"
