#!/bin/bash
# Instructions per message of the bulk sender, counted by callgrind: a figure that
# does not move with the machine's load (system calls are not in it). Two runs,
# SMALL and LARGE messages; the difference over LARGE - SMALL messages leaves out the
# interpreter's start, the imports and the session's opening.
#
# usage: bench/instructions_per_message.sh SRC PORT [small2k|attach100k|pool|campaign] [--async]
#   SRC: the src/ directory of the tree to measure (another checkout compares two
#   versions with the same sender script); PORT: an smtp-sink on 127.0.0.1
#   (smtp-sink -u nobody 127.0.0.1:PORT 1000). attach100k reads
#   $SMTPSTREAM_BENCH_ATTACHMENT (a 100 KiB file). pool and campaign are
#   senders/campaign_smtpstream.py's two modes (2 KiB messages over 2
#   connections: the bare pool, and Campaign.run with its journal, the
#   manifest's check and journaling included).
set -eu
SRC=$1; PORT=$2; KIND=${3:-small2k}; shift $(( $# < 3 ? $# : 3 ))
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
case "$KIND" in
    small2k) SMALL=200; LARGE=1200 ;;
    pool|campaign) SMALL=500; LARGE=2500; WORK=$(mktemp -d) ;;
    *) SMALL=50; LARGE=250 ;;
esac
sender() {  # the sender's command line for $1 messages
    case "$KIND" in
        pool|campaign) echo "$HERE/senders/campaign_smtpstream.py 127.0.0.1 $PORT $1 2 $WORK $KIND" ;;
        *) echo "$HERE/senders/bulk_smtpstream.py 127.0.0.1 $PORT $KIND $1 1" ;;
    esac
}
count() {
    local out; out=$(mktemp)
    # shellcheck disable=SC2046  # the sender's words
    PYTHONPATH="$SRC" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$PYTHON" $(sender "$1") "${@:2}" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    rm -f "$out"
}
if [ -n "${WORK:-}" ]; then  # the manifests written outside the count
    PYTHONPATH="$SRC" "$PYTHON" $(sender $SMALL | sed 's/ campaign$/ pool/') >/dev/null
    PYTHONPATH="$SRC" "$PYTHON" $(sender $LARGE | sed 's/ campaign$/ pool/') >/dev/null
fi
small=$(count $SMALL "$@"); large=$(count $LARGE "$@")
echo "$KIND $*: $(( (large - small) / (LARGE - SMALL) )) instructions per message ($SRC)"
[ -z "${WORK:-}" ] || rm -rf "$WORK"
