#!/usr/bin/env bash
# Generates the files of kubernetes/base that come from elsewhere in the repository:
#   base/nginx.conf      nginx/render.sh (the one template) with the pod's values below
#   base/model-sync.sh   a copy of scripts/model-sync.sh (kustomize reads only files under base/)
#   base/log-ship.sh, base/trainer-sync.sh   copies of scripts/log-ship.sh, scripts/trainer-sync.sh
#
#   kubernetes/generate.sh           write them
#   kubernetes/generate.sh --check   exit 1, with a diff, when a committed file is stale
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$here")
check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "kubernetes/generate.sh: unknown argument '$1' (use --check or nothing)" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The pod's values: must agree with base/deployment.yaml (NGINX_PREFIX, the socket volume,
# containerPort 8080) and the image (non-root: no `user` directive; docs/ under /opt/vwfcgi).
PORT=8080 LISTEN_ADDR=0.0.0.0 SOCKET=/run/vwfcgi/vwfcgi.sock PREFIX=/tmp/nginx \
    WORKERS=2 KEEPALIVE=64 MAX_BODY=8m ERROR_LOG=stderr ACCESS_LOG=/dev/stdout ACCESS_LOG_FORMAT=json NGINX_USER=- \
    DOCS_DIR=/opt/vwfcgi/docs \
    "$root/nginx/render.sh" > "$tmp/nginx.conf"
scripts="model-sync.sh log-ship.sh trainer-sync.sh"
for name in $scripts; do
    cp "$root/scripts/$name" "$tmp/$name"
done

status=0
for name in nginx.conf $scripts; do
    if [ "$check" = 1 ]; then
        if ! diff -u "$here/base/$name" "$tmp/$name" >&2; then
            echo "kubernetes/base/$name is stale: run kubernetes/generate.sh (make deploy-generate)" >&2
            status=1
        fi
    elif ! cmp -s "$tmp/$name" "$here/base/$name" 2> /dev/null; then
        cp "$tmp/$name" "$here/base/$name"
        echo "kubernetes/generate.sh: wrote kubernetes/base/$name" >&2
    fi
done
exit "$status"
