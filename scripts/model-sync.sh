#!/bin/sh
# Syncs model files from a source into vwfcgi's model directory, by write-then-rename.
# POSIX sh: runs in Debian (dash, bash) and in the rclone image (busybox ash).
#
#   scripts/model-sync.sh --once     one sync, exit status says whether it worked (initContainer)
#   scripts/model-sync.sh --loop     sync every SYNC_INTERVAL seconds until SIGTERM/SIGINT (sidecar)
#
# Environment (defaults in brackets):
#   MODEL_SOURCE        a directory, or an rclone remote ("remote:bucket/models",
#                       ":s3,provider=AWS,env_auth:bucket/models", ...) when rclone is installed
#   MODEL_DIR [/models] the directory vwfcgi serves (--models)
#   SYNC_INTERVAL [30]  seconds between two syncs in --loop mode
#   SYNC_CACHE [$TMPDIR/model-sync-cache]  local mirror of an rclone remote (never watched by vwfcgi)
#   SYNC_DELETE [1]     1: a model removed from the source is removed from MODEL_DIR (unloaded)
#   ALLOW_EMPTY [0]     1: an empty source may empty MODEL_DIR (0: an empty listing is taken
#                       for a mistake, e.g. a wrong prefix, and nothing is deleted)
#   RCLONE_FLAGS        extra rclone flags (split on spaces)
#
# Only <name>.vw, <name>.json and <name>.sha256 are synced (SPEC §4); dot files and names
# ending in .tmp, .part, .partial, .writing or ~ are skipped. A file is copied only when its
# bytes differ, to "<file>.tmp" in MODEL_DIR, then renamed over "<file>": vwfcgi never sees a
# half-written file. Order within a sync: .sha256, then .json, then .vw last, so a new .vw is
# never checked against a stale digest; removals go the other way (.vw first).
set -u

say() { echo "model-sync: $*" >&2; }

MODEL_DIR=${MODEL_DIR:-/models}
SYNC_INTERVAL=${SYNC_INTERVAL:-30}
SYNC_CACHE=${SYNC_CACHE:-${TMPDIR:-/tmp}/model-sync-cache}
SYNC_DELETE=${SYNC_DELETE:-1}
ALLOW_EMPTY=${ALLOW_EMPTY:-0}
RCLONE_FLAGS=${RCLONE_FLAGS:-}

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; }

mode=once
case "${1:-}" in
    --once | "") mode=once ;;
    --loop) mode=loop ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown argument '$1'"; usage; exit 2 ;;
esac
[ -n "${MODEL_SOURCE:-}" ] || { say "ERROR: MODEL_SOURCE is not set (a directory or an rclone remote)"; exit 2; }
case "$SYNC_INTERVAL" in '' | *[!0-9]*) say "ERROR: SYNC_INTERVAL must be whole seconds, got '$SYNC_INTERVAL'"; exit 2 ;; esac

# Prints "vw", "json" or "sha256" for a file name that is synced, nothing otherwise.
kind_of() {
    case "$1" in
        .* | *.tmp | *.part | *.partial | *.writing | *~ | *[!A-Za-z0-9_.-]*) return 1 ;;
    esac
    case "$1" in
        [A-Za-z0-9]*.vw) echo vw ;;
        [A-Za-z0-9]*.json) echo json ;;
        [A-Za-z0-9]*.sha256) echo sha256 ;;
        *) return 1 ;;
    esac
}

# Lists the synced files (base names) of directory $1 whose kind is $2.
list_kind() {
    for path in "$1"/*; do
        [ -f "$path" ] || continue   # follows symlinks (a ConfigMap's ..data layout)
        name=${path##*/}
        [ "$(kind_of "$name")" = "$2" ] && echo "$name"
    done
    return 0
}

# Copies $1/$3 to $2/$3 by write-then-rename when the bytes differ. Returns 1 on failure.
put() {
    put_src=$1/$3 put_dst=$2/$3
    if [ -f "$put_dst" ] && cmp -s "$put_src" "$put_dst"; then
        return 0
    fi
    if cp "$put_src" "$put_dst.tmp" && chmod 0644 "$put_dst.tmp" && mv -f "$put_dst.tmp" "$put_dst"; then
        say "updated $3 ($(wc -c < "$put_dst" | tr -d ' ') bytes)"
        return 0
    fi
    rm -f "$put_dst.tmp"
    say "ERROR: could not copy $put_src to $put_dst"
    return 1
}

# Makes the synced files of directory $1 those of MODEL_DIR.
sync_from_dir() {
    src=$1 failed=0
    [ -d "$src" ] || { say "ERROR: source directory $src does not exist"; return 1; }
    # Leftovers of an interrupted copy.
    for kind in vw json sha256; do
        for path in "$MODEL_DIR"/*."$kind".tmp; do
            [ -f "$path" ] && rm -f "$path"
        done
    done
    count=0
    for kind in sha256 json vw; do
        for name in $(list_kind "$src" "$kind"); do
            count=$((count + 1))
            put "$src" "$MODEL_DIR" "$name" || failed=1
        done
    done
    if [ "$SYNC_DELETE" = 1 ]; then
        if [ "$count" -eq 0 ] && [ "$ALLOW_EMPTY" != 1 ] && [ -n "$(list_kind "$MODEL_DIR" vw)" ]; then
            say "WARNING: the source has no model file; keeping the models in $MODEL_DIR (set ALLOW_EMPTY=1 to remove them)"
        else
            for kind in vw json sha256; do
                for name in $(list_kind "$MODEL_DIR" "$kind"); do
                    if [ ! -f "$src/$name" ]; then
                        if rm -f "$MODEL_DIR/$name"; then say "removed $name"; else failed=1; fi
                    fi
                done
            done
        fi
    fi
    return "$failed"
}

sync_once() {
    if [ -d "$MODEL_SOURCE" ]; then
        sync_from_dir "$MODEL_SOURCE"
        return
    fi
    case "$MODEL_SOURCE" in
        *:*) ;;
        *) say "ERROR: MODEL_SOURCE '$MODEL_SOURCE' is neither a directory nor an rclone remote (remote:path)"; return 1 ;;
    esac
    command -v rclone > /dev/null 2>&1 || { say "ERROR: MODEL_SOURCE '$MODEL_SOURCE' is an rclone remote but rclone is not installed"; return 1; }
    mkdir -p "$SYNC_CACHE" || { say "ERROR: cannot create SYNC_CACHE $SYNC_CACHE"; return 1; }
    # The mirror only downloads what changed; the copy into MODEL_DIR then writes and renames.
    # shellcheck disable=SC2086 # RCLONE_FLAGS is a list of words on purpose
    if ! rclone sync "$MODEL_SOURCE" "$SYNC_CACHE" --max-depth 1 \
        --include '*.vw' --include '*.json' --include '*.sha256' ${RCLONE_FLAGS}; then
        say "ERROR: rclone sync from $MODEL_SOURCE failed"
        return 1
    fi
    sync_from_dir "$SYNC_CACHE"
}

mkdir -p "$MODEL_DIR" || { say "ERROR: cannot create MODEL_DIR $MODEL_DIR"; exit 1; }

if [ "$mode" = once ]; then
    if sync_once; then
        say "synced $MODEL_SOURCE into $MODEL_DIR"
        exit 0
    fi
    say "ERROR: sync from $MODEL_SOURCE failed"
    exit 1
fi

sleeper=
stop() {
    [ -n "$sleeper" ] && kill "$sleeper" 2> /dev/null
    say "stopping"
    exit 0
}
trap stop TERM INT
say "syncing $MODEL_SOURCE into $MODEL_DIR every ${SYNC_INTERVAL}s"
while :; do
    sync_once || say "sync failed; next try in ${SYNC_INTERVAL}s (models already in $MODEL_DIR keep serving)"
    # In the background, so that a signal interrupts the wait at once.
    sleep "$SYNC_INTERVAL" &
    sleeper=$!
    wait "$sleeper"
    sleeper=
done
