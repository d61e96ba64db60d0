#!/bin/sh
# Ships the learning loop's event-log segments (SPEC §8.4) from a serving pod to the bucket.
# POSIX sh: runs in Debian (dash, bash) and in the rclone image (busybox ash).
#
#   scripts/log-ship.sh --once    ship the closed segments once, exit status says whether it worked
#   scripts/log-ship.sh --loop    ship every SHIP_INTERVAL seconds; on SIGTERM/SIGINT ship everything,
#                                 the newest segments included, then exit (sidecar)
#   scripts/log-ship.sh --final   ship everything once, the newest segments included (writer stopped)
#
# Environment (defaults in brackets):
#   LOG_DEST            a directory, or an rclone remote ("remote:bucket/prod/logs") when rclone is
#                       installed; segments land at LOG_DEST/<name>/log/<instance>-<seq>.dsjson
#   STATE_DIR [/state]  vwfcgi's --state-dir: read, and written only for the markers below
#   SHIP_MARK [1]       1: after a closed segment's copy is verified, create <segment>.shipped beside
#                       it, which lets vwfcgi delete the segment by its retention and state budget
#                       (issue 24); 0: never write to STATE_DIR (then nothing deletes shipped segments)
#   SHIP_INTERVAL [60]  seconds between two shipments in --loop mode
#   SHIP_RECORD [$TMPDIR/log-ship-record]  sizes already shipped to a remote (a directory it may write)
#   RCLONE_FLAGS        extra rclone flags (split on spaces)
#
# A segment <instance>-<seq>.dsjson is closed when the same instance has a segment with a higher
# seq: vwfcgi never writes to it again. The newest segment of each instance is being written and
# is shipped only by --final and by the stop of --loop (vwfcgi has stopped by then: see DEPLOY.md).
# Segments only grow, so a segment is shipped when the destination has fewer bytes of it than
# STATE_DIR: each closed segment once, a newest one again at the stop if it grew. Directory
# destination: written to "<file>.tmp" and renamed, so a reader never sees a partial segment.
# rclone remote: `rclone copyto` (object stores show an object only once it is complete).
# Verified: a directory copy must equal the segment byte for byte (cmp), a remote object must have
# its size (rclone lsf). Only then, and only for a closed segment (it never grows again), is the
# marker written; vwfcgi deletes a segment of an externally trained model only when it has one.
set -u

say() { echo "log-ship: $*" >&2; }

STATE_DIR=${STATE_DIR:-/state}
SHIP_INTERVAL=${SHIP_INTERVAL:-60}
SHIP_RECORD=${SHIP_RECORD:-${TMPDIR:-/tmp}/log-ship-record}
RCLONE_FLAGS=${RCLONE_FLAGS:-}
SHIP_MARK=${SHIP_MARK:-1}

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; }

mode=once
case "${1:-}" in
    --once | "") mode=once ;;
    --loop) mode=loop ;;
    --final) mode=final ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown argument '$1'"; usage; exit 2 ;;
esac
[ -n "${LOG_DEST:-}" ] || { say "ERROR: LOG_DEST is not set (a directory or an rclone remote)"; exit 2; }
case "$SHIP_INTERVAL" in '' | *[!0-9]*) say "ERROR: SHIP_INTERVAL must be whole seconds, got '$SHIP_INTERVAL'"; exit 2 ;; esac
case "$SHIP_MARK" in 0 | 1) ;; *) say "ERROR: SHIP_MARK must be 0 or 1, got '$SHIP_MARK'"; exit 2 ;; esac

remote=0
if [ ! -d "$LOG_DEST" ]; then
    case "$LOG_DEST" in
        *:*) remote=1 ;;
        *) say "ERROR: LOG_DEST '$LOG_DEST' is neither a directory nor an rclone remote (remote:path)"; exit 2 ;;
    esac
    command -v rclone > /dev/null 2>&1 || { say "ERROR: LOG_DEST '$LOG_DEST' is an rclone remote but rclone is not installed"; exit 2; }
fi

# Prints the segments of log directory $1 to ship, one file name a line: the closed ones, and with
# $2 = 1 the newest of each instance too. Other names (temporary files, ...) are never shipped.
segments() {
    for path in "$1"/*.dsjson; do
        [ -f "$path" ] && echo "${path##*/}"
    done | awk -v all="$2" '
        {
            stem = substr($0, 1, length($0) - 7)
            n = split(stem, part, "-")
            seq = part[n]
            instance = substr(stem, 1, length(stem) - length(seq) - 1)
            if (n < 2 || seq !~ /^[0-9]+$/ || instance !~ /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/ || length(instance) > 128) next
            count++
            file[count] = $0; who[count] = instance; number[count] = seq + 0
            if (!(instance in newest) || seq + 0 > newest[instance]) newest[instance] = seq + 0
        }
        END { for (i = 1; i <= count; i++) if (all == 1 || number[i] < newest[who[i]]) print file[i] }'
}

size_of() { wc -c < "$1" | tr -d ' '; }

# Marks closed segment $2 of model $1 shipped ($3 = 1: closed), once, when SHIP_MARK is 1.
# A marker that cannot be written is an error (vwfcgi would keep the segment) but not a failed shipment.
mark() {
    [ "$SHIP_MARK" = 1 ] && [ "$3" = 1 ] || return 0
    marker=$STATE_DIR/$1/log/$2.shipped
    [ -f "$marker" ] && return 0
    if : > "$marker" 2> /dev/null; then
        say "wrote the marker of $1/log/$2 (copy verified)"
    else
        say "ERROR: cannot write $marker (is $STATE_DIR mounted read-only? set SHIP_MARK=0 to ship without markers)"
    fi
    return 0
}

# Ships $STATE_DIR/$1/log/$2 when the destination has fewer bytes of it, verifies the copy, and marks
# it shipped when it is closed ($3 = 1). Returns 1 on failure.
ship() {
    src=$STATE_DIR/$1/log/$2
    size=$(size_of "$src") || return 1
    if [ "$remote" = 0 ]; then
        dst=$LOG_DEST/$1/log/$2
        if [ -f "$dst" ]; then
            if [ "$3" = 1 ] && [ "$SHIP_MARK" = 1 ]; then
                # A closed segment: marked once its copy compared equal; a copy that differs is replaced.
                [ -f "$src.shipped" ] && return 0
                if cmp -s "$src" "$dst"; then
                    mark "$1" "$2" "$3"
                    return 0
                fi
            elif [ "$(size_of "$dst")" -ge "$size" ]; then
                return 0
            fi
        fi
        if mkdir -p "$LOG_DEST/$1/log" && cp "$src" "$dst.tmp" && chmod 0644 "$dst.tmp" && mv -f "$dst.tmp" "$dst" \
            && cmp -s "$src" "$dst"; then
            say "shipped $1/log/$2 ($size bytes)"
            mark "$1" "$2" "$3"
            return 0
        fi
        rm -f "$dst.tmp"
    else
        record=$SHIP_RECORD/$1/$2
        if [ -f "$record" ] && [ "$(cat "$record")" -ge "$size" ] 2> /dev/null; then
            mark "$1" "$2" "$3"
            return 0
        fi
        object=${LOG_DEST%/}/$1/log/$2
        # shellcheck disable=SC2086 # RCLONE_FLAGS is a list of words on purpose
        if rclone copyto "$src" "$object" ${RCLONE_FLAGS} \
            && [ "$(rclone lsf --format s "$object" ${RCLONE_FLAGS})" = "$size" ] \
            && mkdir -p "$SHIP_RECORD/$1" && echo "$size" > "$record.tmp" && mv -f "$record.tmp" "$record"; then
            say "shipped $1/log/$2 ($size bytes)"
            mark "$1" "$2" "$3"
            return 0
        fi
    fi
    say "ERROR: could not ship $src to $LOG_DEST"
    return 1
}

# One shipment; $1 = 1: the newest segments too.
ship_all() {
    failed=0
    [ -d "$STATE_DIR" ] || { say "ERROR: STATE_DIR $STATE_DIR does not exist"; return 1; }
    for dir in "$STATE_DIR"/*/log; do
        [ -d "$dir" ] || continue
        name=${dir%/log}
        name=${name##*/}
        case "$name" in .* | *[!A-Za-z0-9_.-]*) continue ;; esac
        closed=" $(segments "$dir" 0 | tr '\n' ' ') "
        for file in $(segments "$dir" "$1"); do
            case "$closed" in *" $file "*) is_closed=1 ;; *) is_closed=0 ;; esac
            ship "$name" "$file" "$is_closed" || failed=1
        done
    done
    return "$failed"
}

case "$mode" in
    once) ship_all 0; exit ;;
    final) ship_all 1; exit ;;
esac

sleeper=
# shellcheck disable=SC2317 # called by the trap
stop() {
    [ -n "$sleeper" ] && kill "$sleeper" 2> /dev/null
    say "stopping: shipping every segment, the newest included"
    if ship_all 1; then exit 0; fi
    say "ERROR: the final shipment failed: the segments not shipped are lost with the pod"
    exit 1
}
trap stop TERM INT
say "shipping the closed segments of $STATE_DIR to $LOG_DEST every ${SHIP_INTERVAL}s"
while :; do
    ship_all 0 || say "shipment failed; next try in ${SHIP_INTERVAL}s (nothing is lost while the pod lives)"
    # In the background, so that a signal interrupts the wait at once.
    sleep "$SHIP_INTERVAL" &
    sleeper=$!
    wait "$sleeper"
    sleeper=
done
