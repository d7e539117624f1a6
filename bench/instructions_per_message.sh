#!/bin/bash
# Instructions per message of the bulk sender, counted by callgrind: a figure that
# does not move with the machine's load (system calls are not in it). Two runs,
# SMALL and LARGE messages; the difference over LARGE - SMALL messages leaves out the
# interpreter's start, the imports and the session's opening.
#
# usage: bench/instructions_per_message.sh SRC PORT [small2k|attach100k] [--async]
#   SRC: the src/ directory of the tree to measure (another checkout compares two
#   versions with the same sender script); PORT: an smtp-sink on 127.0.0.1
#   (smtp-sink -u nobody 127.0.0.1:PORT 1000). attach100k reads
#   $SMTPSTREAM_BENCH_ATTACHMENT (a 100 KiB file).
set -eu
SRC=$1; PORT=$2; KIND=${3:-small2k}; shift $(( $# < 3 ? $# : 3 ))
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$KIND" = small2k ]; then SMALL=200; LARGE=1200; else SMALL=50; LARGE=250; fi
count() {
    local out; out=$(mktemp)
    PYTHONPATH="$SRC" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$PYTHON" "$HERE/senders/bulk_smtpstream.py" 127.0.0.1 "$PORT" "$KIND" "$1" 1 "${@:2}" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    rm -f "$out"
}
small=$(count $SMALL "$@"); large=$(count $LARGE "$@")
echo "$KIND $*: $(( (large - small) / (LARGE - SMALL) )) instructions per message ($SRC)"
