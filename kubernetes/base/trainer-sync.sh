#!/bin/sh
# The external trainer's side of the bucket (SPEC §8.7): pulls the shipped event logs and the
# models, pushes the models that `vwfcgi train` publishes. POSIX sh (Debian, busybox ash).
#
#   scripts/trainer-sync.sh --once    pull logs and models once (initContainer)
#   scripts/trainer-sync.sh --round   one round of --loop: pull, then push (tests, by hand)
#   scripts/trainer-sync.sh --loop    every SYNC_INTERVAL seconds: pull logs, pull models changed
#                                     in the bucket, push models the trainer published (sidecar)
#
# Environment (defaults in brackets):
#   LOG_SOURCE          where the pods ship their logs (their LOG_DEST): a directory or an rclone
#                       remote holding <name>/log/<instance>-<seq>.dsjson
#   MODEL_SOURCE        the bucket's models (the serving pods' MODEL_SOURCE): a directory or a remote
#   STATE_DIR [/state]  `vwfcgi train --state`: logs are pulled into STATE_DIR/<name>/log/
#   MODEL_DIR [/models-out]  `vwfcgi train --models`: the base models, and what it publishes
#   SYNC_RECORD [$TMPDIR/trainer-sync-record]  what the bucket and MODEL_DIR last agreed on (keep it
#                       with MODEL_DIR, on the trainer's volume)
#   SYNC_CACHE [$TMPDIR/trainer-sync-cache]    local mirror of a remote MODEL_SOURCE
#   SYNC_INTERVAL [30], RCLONE_FLAGS (extra rclone flags, split on spaces)
#
# Logs: a segment is pulled when the bucket has more bytes of it than were pulled before (segments
# only grow; the sizes pulled are kept in SYNC_RECORD/logs/), into "<file>.tmp", then renamed: the
# trainer never reads a partial file. `vwfcgi train` deletes a pulled segment once it is joined and
# past its retention (issue 24): the record keeps it from being pulled again. Nothing is deleted in
# the bucket (its lifecycle rules do that). The shippers write only complete files.
# Models (<name>.vw, .json, .sha256): a file that changed in the bucket since the last agreement
# was put there by an operator: it is pulled into MODEL_DIR (the operator's word wins, it becomes
# the new base). A file that changed in MODEL_DIR was published by the trainer: it is pushed,
# .sha256 and .json before .vw (the order model-sync.sh expects), and only when the .vw matches
# its .sha256 (never a half-published model). Directories: write-then-rename; remotes: rclone copyto.
set -u

say() { echo "trainer-sync: $*" >&2; }

STATE_DIR=${STATE_DIR:-/state}
MODEL_DIR=${MODEL_DIR:-/models-out}
SYNC_RECORD=${SYNC_RECORD:-${TMPDIR:-/tmp}/trainer-sync-record}
SYNC_CACHE=${SYNC_CACHE:-${TMPDIR:-/tmp}/trainer-sync-cache}
SYNC_INTERVAL=${SYNC_INTERVAL:-30}
RCLONE_FLAGS=${RCLONE_FLAGS:-}

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; }

mode=once
case "${1:-}" in
    --once | "") mode=once ;;
    --loop) mode=loop ;;
    --round) mode=round ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown argument '$1'"; usage; exit 2 ;;
esac
[ -n "${LOG_SOURCE:-}" ] || { say "ERROR: LOG_SOURCE is not set (a directory or an rclone remote)"; exit 2; }
[ -n "${MODEL_SOURCE:-}" ] || { say "ERROR: MODEL_SOURCE is not set (a directory or an rclone remote)"; exit 2; }
case "$SYNC_INTERVAL" in '' | *[!0-9]*) say "ERROR: SYNC_INTERVAL must be whole seconds, got '$SYNC_INTERVAL'"; exit 2 ;; esac

# 1 when $1 is an rclone remote, 0 when a directory; exits on anything else.
is_remote() {
    if [ -d "$1" ]; then echo 0; return; fi
    case "$1" in
        *:*) command -v rclone > /dev/null 2>&1 || { say "ERROR: '$1' is an rclone remote but rclone is not installed"; exit 2; }
             echo 1 ;;
        *) say "ERROR: '$1' is neither a directory nor an rclone remote (remote:path)"; exit 2 ;;
    esac
}
log_remote=$(is_remote "$LOG_SOURCE") || exit 2
model_remote=$(is_remote "$MODEL_SOURCE") || exit 2

size_of() { wc -c < "$1" | tr -d ' '; }
valid_name() { case "$1" in .* | "" | *[!A-Za-z0-9_.-]*) return 1 ;; esac; }
valid_segment() {
    case "$1" in .* | *[!A-Za-z0-9_.-]* | *.tmp) return 1 ;; *-[0-9]*.dsjson) return 0 ;; esac
    return 1
}

# Copies $1 (a local path, or remote:path when $3 = 1) to local file $2 by write-then-rename.
fetch() {
    if [ "$3" = 1 ]; then
        # shellcheck disable=SC2086 # RCLONE_FLAGS is a list of words on purpose
        rclone copyto "$1" "$2.tmp" ${RCLONE_FLAGS} || { rm -f "$2.tmp"; return 1; }
    else
        cp "$1" "$2.tmp" || { rm -f "$2.tmp"; return 1; }
    fi
    chmod 0644 "$2.tmp" && mv -f "$2.tmp" "$2"
}

# Pulls every segment the bucket has more bytes of than STATE_DIR.
pull_logs() {
    failed=0
    if [ "$log_remote" = 1 ]; then
        # shellcheck disable=SC2086
        listing=$(rclone lsf -R --files-only --format "ps" --separator " " --include "*/log/*.dsjson" \
            "$LOG_SOURCE" ${RCLONE_FLAGS})
        status=$?
        # 3: directory not found (no pod has shipped anything yet; object stores list it as empty).
        if [ "$status" = 3 ]; then
            listing=
        elif [ "$status" != 0 ]; then
            say "ERROR: cannot list $LOG_SOURCE"
            return 1
        fi
    else
        listing=$(for path in "$LOG_SOURCE"/*/log/*.dsjson; do
            [ -f "$path" ] && echo "${path#"$LOG_SOURCE"/} $(size_of "$path")"
        done)
    fi
    # Each line: <name>/log/<file> <size>
    while read -r rel size; do
        [ -n "$rel" ] || continue
        name=${rel%%/*} file=${rel##*/}
        if [ "$rel" != "$name/log/$file" ] || ! valid_name "$name" || ! valid_segment "$file"; then
            continue
        fi
        dst=$STATE_DIR/$name/log/$file
        pulled=$SYNC_RECORD/logs/$name/$file
        if [ -f "$dst" ] && [ "$(size_of "$dst")" -ge "$size" ]; then
            continue
        fi
        if [ -f "$pulled" ] && [ "$(cat "$pulled")" -ge "$size" ] 2> /dev/null; then
            continue  # pulled whole before, and deleted by the trainer's retention since
        fi
        if mkdir -p "$STATE_DIR/$name/log" "$SYNC_RECORD/logs/$name" && fetch "${LOG_SOURCE%/}/$rel" "$dst" "$log_remote" \
            && echo "$size" > "$pulled.tmp" && mv -f "$pulled.tmp" "$pulled"; then
            say "pulled $rel ($size bytes)"
        else
            say "ERROR: could not pull $rel"
            failed=1
        fi
    done << EOF
$listing
EOF
    return "$failed"
}

# The directory holding the bucket's model files: MODEL_SOURCE itself, or its local mirror.
bucket_models() {
    if [ "$model_remote" = 0 ]; then
        echo "$MODEL_SOURCE"
        return 0
    fi
    mkdir -p "$SYNC_CACHE" || return 1
    # shellcheck disable=SC2086
    rclone sync "$MODEL_SOURCE" "$SYNC_CACHE" --max-depth 1 \
        --include '*.vw' --include '*.json' --include '*.sha256' ${RCLONE_FLAGS} || return 1
    echo "$SYNC_CACHE"
}

# The SHA-256 of file $1, or "none" when it does not exist.
sum_of() { if [ -f "$1" ]; then sha256sum < "$1" | cut -c1-64; else echo none; fi; }
recorded() { if [ -f "$SYNC_RECORD/$1" ]; then cat "$SYNC_RECORD/$1"; else echo none; fi; }
record() {
    mkdir -p "$SYNC_RECORD" && echo "$2" > "$SYNC_RECORD/$1.tmp" && mv -f "$SYNC_RECORD/$1.tmp" "$SYNC_RECORD/$1"
}
# Whether any file of model $2 in directory $1 differs from the record.
changed() {
    for ext in sha256 json vw; do
        [ "$(sum_of "$1/$2.$ext")" = "$(recorded "$2.$ext")" ] || return 0
    done
    return 1
}

# Bucket -> MODEL_DIR for the models an operator changed in the bucket.
pull_models() {
    failed=0 bucket=$1
    for path in "$bucket"/*.vw; do
        [ -f "$path" ] || continue
        name=${path##*/}
        name=${name%.vw}
        valid_name "$name" || continue
        changed "$bucket" "$name" || continue
        for ext in sha256 json vw; do
            if [ -f "$bucket/$name.$ext" ]; then
                fetch "$bucket/$name.$ext" "$MODEL_DIR/$name.$ext" 0 || { failed=1; continue 2; }
            else
                rm -f "$MODEL_DIR/$name.$ext"
            fi
            record "$name.$ext" "$(sum_of "$bucket/$name.$ext")"
        done
        say "pulled model $name from the bucket (new base)"
    done
    return "$failed"
}

# MODEL_DIR -> bucket for the models the trainer published.
push_models() {
    failed=0
    for path in "$MODEL_DIR"/*.vw; do
        [ -f "$path" ] || continue
        name=${path##*/}
        name=${name%.vw}
        valid_name "$name" || continue
        changed "$MODEL_DIR" "$name" || continue
        if [ -f "$MODEL_DIR/$name.sha256" ]; then
            want=$(cut -c1-64 < "$MODEL_DIR/$name.sha256")
            have=$(sha256sum < "$path" | cut -c1-64)
            if [ "$want" != "$have" ]; then
                say "model $name: .vw and .sha256 differ (being published?): not pushed yet"
                continue
            fi
        fi
        for ext in sha256 json vw; do
            [ -f "$MODEL_DIR/$name.$ext" ] || continue
            sum=$(sum_of "$MODEL_DIR/$name.$ext")
            [ "$sum" = "$(recorded "$name.$ext")" ] && continue
            if [ "$model_remote" = 1 ]; then
                # shellcheck disable=SC2086
                rclone copyto "$MODEL_DIR/$name.$ext" "${MODEL_SOURCE%/}/$name.$ext" ${RCLONE_FLAGS} || { failed=1; continue 2; }
            else
                dst=$MODEL_SOURCE/$name.$ext
                { cp "$MODEL_DIR/$name.$ext" "$dst.tmp" && chmod 0644 "$dst.tmp" && mv -f "$dst.tmp" "$dst"; } \
                    || { rm -f "$dst.tmp"; failed=1; continue 2; }
            fi
            record "$name.$ext" "$sum"
        done
        say "pushed model $name ($(size_of "$path") bytes) to $MODEL_SOURCE"
    done
    return "$failed"
}

sync_once() {
    failed=0
    mkdir -p "$STATE_DIR" "$MODEL_DIR" || { say "ERROR: cannot create $STATE_DIR or $MODEL_DIR"; return 1; }
    pull_logs || failed=1
    if bucket=$(bucket_models); then
        pull_models "$bucket" || failed=1
    else
        say "ERROR: cannot read the models of $MODEL_SOURCE"
        failed=1
        bucket=
    fi
    # Pushing after an unreadable bucket could overwrite an operator's upload: wait for the next round.
    if [ "$1" = push ] && [ -n "$bucket" ]; then
        push_models || failed=1
    fi
    return "$failed"
}

if [ "$mode" = round ]; then
    sync_once push
    exit
fi
if [ "$mode" = once ]; then
    if sync_once pull; then
        say "logs from $LOG_SOURCE and models from $MODEL_SOURCE are in $STATE_DIR and $MODEL_DIR"
        exit 0
    fi
    say "ERROR: the pull failed"
    exit 1
fi

sleeper=
# shellcheck disable=SC2317 # called by the trap
stop() {
    [ -n "$sleeper" ] && kill "$sleeper" 2> /dev/null
    say "stopping: pushing what the trainer published"
    sync_once push
    exit 0
}
trap stop TERM INT
say "pulling logs from $LOG_SOURCE, syncing models with $MODEL_SOURCE every ${SYNC_INTERVAL}s"
while :; do
    sync_once push || say "sync failed; next try in ${SYNC_INTERVAL}s"
    sleep "$SYNC_INTERVAL" &
    sleeper=$!
    wait "$sleeper"
    sleeper=
done
