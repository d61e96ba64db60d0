#!/bin/sh
# A vw command for tests: a model staged as `hang-…` starts a process that never answers its
# probe; every other model runs the real vw ($REAL_VW).
for arg in "$@"; do
    case "$arg" in
        */hang-*) exec sleep 600 ;;
    esac
done
exec "$REAL_VW" "$@"
