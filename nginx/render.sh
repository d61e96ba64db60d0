#!/usr/bin/env bash
# Renders nginx.conf.template to stdout.
#
#   PREFIX=/path/run/nginx SOCKET=/path/run/vwfcgi.sock nginx/render.sh > nginx.conf
#   nginx -e stderr -p "$PREFIX" -c "$PWD/nginx.conf" -g 'daemon off;'
#
# Environment (defaults in brackets):
#   PORT [8080]            port nginx listens on
#   LISTEN_ADDR [127.0.0.1] address nginx listens on (0.0.0.0 in a container)
#   SOCKET                 vwfcgi's unix socket (required unless UPSTREAM is set)
#   UPSTREAM [unix:SOCKET] FastCGI upstream instead, e.g. 127.0.0.1:9000 for `vwfcgi --listen`
#   PREFIX                 directory for nginx's pid, logs and temp dirs (required; created)
#   MAX_BODY [8m]          client_max_body_size
#   WORKERS [2]            worker_processes
#   CLIENT_HEADER_TIMEOUT [10s]  nginx client_header_timeout (slow clients sending headers: 408)
#   CLIENT_BODY_TIMEOUT [10s]    nginx client_body_timeout (slow clients sending the body: 408)
#   SEND_TIMEOUT [10s]     nginx send_timeout (clients that do not read the reply)
#   WORKER_CONNECTIONS [4096]  connections per worker (clients + FastCGI)
#   WORKER_NOFILE [2 x WORKER_CONNECTIONS]  worker_rlimit_nofile
#   LIMIT_CONN [128]       concurrent connections per client address (429 beyond)
#   KEEPALIVE [64]         idle FastCGI connections kept per worker (they hold no vwfcgi thread); below
#                          the concurrency a worker sees, nginx opens and closes one per request
#   ERROR_LOG [PREFIX/error.log]   a file, or stderr
#   ACCESS_LOG [PREFIX/access.log] a file, /dev/stdout, or off
#   ACCESS_LOG_FORMAT [text]       text (`... request_id="..."`) or json (one object per line)
#   DOCS_DIR [<this repository or image>/docs]  where GET /openapi.json is read (openapi.json)
#   NGINX_USER             `user` directive; default root when run as root (so workers can
#                          reach the 0660 socket), none otherwise; "-" for none
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
template=${TEMPLATE:-$here/nginx.conf.template}

die() { echo "nginx/render.sh: ERROR: $*" >&2; exit 1; }

[ -r "$template" ] || die "template $template not readable"
[ -n "${PREFIX:-}" ] || die "PREFIX is not set (directory for nginx's pid, logs and temp files)"
case "$PREFIX" in /*) ;; *) PREFIX="$(pwd -P)/$PREFIX" ;; esac
PREFIX=${PREFIX%/}
if [ -z "${UPSTREAM:-}" ]; then
    [ -n "${SOCKET:-}" ] || die "SOCKET is not set (vwfcgi's unix socket), nor UPSTREAM"
    case "$SOCKET" in /*) ;; *) SOCKET="$(pwd -P)/$SOCKET" ;; esac
    UPSTREAM="unix:$SOCKET"
fi
PORT=${PORT:-8080}
LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1}
MAX_BODY=${MAX_BODY:-8m}
WORKERS=${WORKERS:-2}
KEEPALIVE=${KEEPALIVE:-64}
CLIENT_HEADER_TIMEOUT=${CLIENT_HEADER_TIMEOUT:-10s}
CLIENT_BODY_TIMEOUT=${CLIENT_BODY_TIMEOUT:-10s}
SEND_TIMEOUT=${SEND_TIMEOUT:-10s}
WORKER_CONNECTIONS=${WORKER_CONNECTIONS:-4096}
LIMIT_CONN=${LIMIT_CONN:-128}
ERROR_LOG=${ERROR_LOG:-$PREFIX/error.log}
ACCESS_LOG=${ACCESS_LOG:-$PREFIX/access.log}
DOCS_DIR=${DOCS_DIR:-$(dirname "$here")/docs}
case "$DOCS_DIR" in /*) ;; *) DOCS_DIR="$(pwd -P)/$DOCS_DIR" ;; esac
DOCS_DIR=${DOCS_DIR%/}
ACCESS_LOG_FORMAT=${ACCESS_LOG_FORMAT:-text}
case "$ACCESS_LOG_FORMAT" in
    text) access_format=vwfcgi ;;
    json) access_format=vwfcgi_json ;;
    *) die "ACCESS_LOG_FORMAT must be text or json, got '$ACCESS_LOG_FORMAT'" ;;
esac
ACCESS_LOG_DIRECTIVE=off
[ "$ACCESS_LOG" = off ] || ACCESS_LOG_DIRECTIVE="$ACCESS_LOG $access_format"
if [ -z "${NGINX_USER+set}" ]; then
    if [ "$(id -u)" -eq 0 ]; then NGINX_USER=root; else NGINX_USER=-; fi
fi
if [ "$NGINX_USER" = - ] || [ -z "$NGINX_USER" ]; then
    USER_LINE="# no user directive: workers run as the user that starts nginx"
else
    USER_LINE="user $NGINX_USER;"
fi

[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
[[ "$WORKERS" =~ ^([0-9]+|auto)$ ]] || die "WORKERS must be a number or auto, got '$WORKERS'"
[[ "$KEEPALIVE" =~ ^[0-9]+$ ]] || die "KEEPALIVE must be a number, got '$KEEPALIVE'"
[[ "$WORKER_CONNECTIONS" =~ ^[0-9]+$ ]] || die "WORKER_CONNECTIONS must be a number, got '$WORKER_CONNECTIONS'"
WORKER_NOFILE=${WORKER_NOFILE:-$((WORKER_CONNECTIONS * 2))}
[[ "$WORKER_NOFILE" =~ ^[0-9]+$ ]] || die "WORKER_NOFILE must be a number, got '$WORKER_NOFILE'"
[[ "$LIMIT_CONN" =~ ^[1-9][0-9]*$ ]] || die "LIMIT_CONN must be a positive number, got '$LIMIT_CONN'"
for value in "$CLIENT_HEADER_TIMEOUT" "$CLIENT_BODY_TIMEOUT" "$SEND_TIMEOUT"; do
    [[ "$value" =~ ^[0-9]+(ms|s|m)?$ ]] || die "client timeouts must look like 10s, 500ms or 1m, got '$value'"
done
[[ "$MAX_BODY" =~ ^[0-9]+[kKmMgG]?$ ]] || die "MAX_BODY must look like 8m, 512k or 1048576, got '$MAX_BODY'"
for value in "$PREFIX" "$UPSTREAM" "$LISTEN_ADDR" "$ERROR_LOG" "$ACCESS_LOG" "$NGINX_USER" "$DOCS_DIR"; do
    [[ "$value" =~ [[:space:]\;\{\}\'\"] ]] && die "value '$value' contains whitespace, quotes, ';' or braces"
done

mkdir -p "$PREFIX" || die "cannot create PREFIX $PREFIX"

# Escape a value for the replacement side of sed's s|...|...|.
esc() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

sed -e "s|@USER_LINE@|$(esc "$USER_LINE")|g" \
    -e "s|@WORKERS@|$(esc "$WORKERS")|g" \
    -e "s|@KEEPALIVE@|$(esc "$KEEPALIVE")|g" \
    -e "s|@PREFIX@|$(esc "$PREFIX")|g" \
    -e "s|@ERROR_LOG@|$(esc "$ERROR_LOG")|g" \
    -e "s|@ACCESS_LOG@|$(esc "$ACCESS_LOG_DIRECTIVE")|g" \
    -e "s|@UPSTREAM@|$(esc "$UPSTREAM")|g" \
    -e "s|@LISTEN_ADDR@|$(esc "$LISTEN_ADDR")|g" \
    -e "s|@PORT@|$(esc "$PORT")|g" \
    -e "s|@MAX_BODY@|$(esc "$MAX_BODY")|g" \
    -e "s|@CLIENT_HEADER_TIMEOUT@|$(esc "$CLIENT_HEADER_TIMEOUT")|g" \
    -e "s|@CLIENT_BODY_TIMEOUT@|$(esc "$CLIENT_BODY_TIMEOUT")|g" \
    -e "s|@SEND_TIMEOUT@|$(esc "$SEND_TIMEOUT")|g" \
    -e "s|@WORKER_CONNECTIONS@|$(esc "$WORKER_CONNECTIONS")|g" \
    -e "s|@WORKER_NOFILE@|$(esc "$WORKER_NOFILE")|g" \
    -e "s|@LIMIT_CONN@|$(esc "$LIMIT_CONN")|g" \
    -e "s|@DOCS_DIR@|$(esc "$DOCS_DIR")|g" \
    "$template" > "$PREFIX/.render.$$" || die "sed failed"
if grep -n '^[^#]*@[A-Z_][A-Z_]*@' "$PREFIX/.render.$$" >&2; then
    rm -f "$PREFIX/.render.$$"
    die "unreplaced @FIELD@ left in the rendered config (above)"
fi
cat "$PREFIX/.render.$$"
rm -f "$PREFIX/.render.$$"
