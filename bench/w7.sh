#!/usr/bin/env bash
# bench/w7.sh — workload W7 (recovery): time from start to the first served
# request after kill -9, with W7_MIB (1,024) MiB of data.
#
#   bench/w7.sh            (make bench runs it)
#
# 1. A fresh Parley gets W7_MIB MiB in a byte stream, in appends of 4 MiB
#    (4 at a time), and a JSON stream for the write burst below.
# 2. RUNS times: wrk appends 1 KiB JSON messages (post.lua, 64 connections)
#    and 1 s into that burst Parley is killed with SIGKILL, mid-commit; then
#    it is started again on the same data directory (a new port) and
#    first_reply (C) polls every millisecond until GET /healthz answers 200
#    and then until a read of the big stream (?offset=now) does. The time is
#    from just before the start (bash's $EPOCHREALTIME) to each 200.
#    The page cache stays warm (a kill -9 does not empty it); W7_DROP_CACHES=1
#    empties it before each start (root, the whole machine's cache).
# 3. The median of the runs; the data directory's size is reported.
#
# Knobs (environment): RUNS (3), W7_MIB (1024), W7_DROP_CACHES (0), REV,
# PARLEY, BENCH_OUT, KEEP, MAX_SECONDS (watchdog, 600); see README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

RUNS=${RUNS:-3}
W7_MIB=${W7_MIB:-1024}
W7_DROP_CACHES=${W7_DROP_CACHES:-0}
BENCH_OUT=${BENCH_OUT:-$HERE/out}
MAX_SECONDS=${MAX_SECONDS:-600}
KEEP=${KEEP:-0}

NAME=w7
TOOLS="wrk curl cc cmake"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

FIRST_REPLY="$BENCH_OUT/first_reply"
cc -O2 -Wall -Wextra -o "$FIRST_REPLY" "$HERE/first_reply.c"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATA="$RUN_DIR/parley"
BIG=/v1/stream/w7-big
JSONS=/v1/stream/w7-json-

start_parley() {   # -> PARLEY_PID, PORT, T0 (µs)
    PORT=$(free_port)
    T0=${EPOCHREALTIME/[.,]/}
    "$PARLEY" serve --listen "127.0.0.1:$PORT" --data "$DATA" --quiet >>"$RUN_DIR/parley.log" 2>&1 &
    PARLEY_PID=$!
    PIDS+=("$PARLEY_PID")
}

# ------------------------------------------------------------ fill it up ---
start_parley
wait_http "$PORT" "$PARLEY_PID"
BASE="http://127.0.0.1:$PORT"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' "$BASE$BIG")
case "$code" in 200|201) ;; *) die "PUT $BIG answered $code" ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' "${BASE}${JSONS}0")
case "$code" in 200|201) ;; *) die "PUT ${JSONS}0 answered $code" ;; esac
head -c $((4 << 20)) /dev/urandom >"$RUN_DIR/4mib.bin"
t=$SECONDS
n=$((W7_MIB / 4))
seq "$n" | xargs -P 4 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
    -H 'Content-Type: application/octet-stream' --data-binary @"$RUN_DIR/4mib.bin" "$BASE$BIG" \
    >"$RUN_DIR/fill.txt"
ok=$(grep -c '^204$' "$RUN_DIR/fill.txt" || true)
[ "$ok" = "$n" ] || die "$ok of $n appends of 4 MiB answered 204 ($(sort "$RUN_DIR/fill.txt" | uniq -c | tr '\n' ' '))"
rm -f "$RUN_DIR/4mib.bin"
FILL_S=$((SECONDS - t))
log "appended $((n * 4)) MiB in $FILL_S s; data directory $(du -sm "$DATA" | cut -f1) MiB"

# --------------------------------------------------------------- kill -9 ---
: >"$RUN_DIR/w7.res"
for ((run = 1; run <= RUNS; run++)); do
    wrk -t2 -c64 -d3s --timeout 2s -s "$HERE/post.lua" "http://127.0.0.1:$PORT" -- "$JSONS" 1 2 \
        >"$RUN_DIR/burst-$run.txt" 2>&1 &
    burst=$!
    sleep 1
    kill -KILL "$PARLEY_PID"
    wait "$PARLEY_PID" 2>/dev/null || true
    wait "$burst" 2>/dev/null || true
    size=$(du -sm "$DATA" | cut -f1)
    if [ "$W7_DROP_CACHES" = 1 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
    start_parley
    if ! line=$("$FIRST_REPLY" "$PORT" "$T0" 60 /healthz "$BIG?offset=now"); then
        # Kept past the clean-up, for reading.
        cp "$RUN_DIR/parley.log" "$BENCH_OUT/w7-parley-failed.log" 2>/dev/null || true
        alive=exited
        kill -0 "$PARLEY_PID" 2>/dev/null && alive="still running"
        die "no answer after kill -9 (run $run, port $PORT, server $alive): $line (server log: $BENCH_OUT/w7-parley-failed.log)"
    fi
    line="$line data_mib=$size"
    echo "$line" >>"$RUN_DIR/w7.res"
    log "run $run: $line"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$PORT$BIG")
[ "$code" = 200 ] || die "HEAD $BIG answered $code after the last restart"
tail_bytes=$(curl -s -I "http://127.0.0.1:$PORT$BIG" | tr -d '\r' |
    sed -n 's/^[Ss]tream-[Nn]ext-[Oo]ffset: [0-9]*_0*\([0-9][0-9]*\)$/\1/p')
[ "$tail_bytes" = $((n * 4 << 20)) ] || die "the big stream holds $tail_bytes bytes, not $((n * 4 << 20))"

health=$(field ms1 <"$RUN_DIR/w7.res" | median)
read_ms=$(field ms2 <"$RUN_DIR/w7.res" | median)
runs_h=$(field ms1 <"$RUN_DIR/w7.res" | paste -sd, - | sed 's/,/, /g')
size=$(field data_mib <"$RUN_DIR/w7.res" | median)

# -------------------------------------------------------------- report -----
commit=$(commit_label)
{
    echo "w7.healthz_ms=$health"
    echo "w7.read_ms=$read_ms"
    echo "w7.data_mib=$size"
} >"$BENCH_OUT/w7-summary.txt"
{
    echo "### W7 recovery — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo
    echo "$((n * 4)) MiB appended to a byte stream in 4 MiB appends ($FILL_S s); data directory" \
        "$size MiB at the kills. Each run: 64 connections append 1 KiB JSON messages, Parley is" \
        "killed with SIGKILL 1 s into it, then started again on the same data; time from the" \
        "start to the first 200 of GET /healthz, and of a read of the big stream" \
        "(\`?offset=now\`), polled every millisecond. Page cache" \
        "$(if [ "$W7_DROP_CACHES" = 1 ]; then echo "emptied before each start"; else echo "warm (as after a kill -9)"; fi)." \
        "Median of $RUNS runs."
    machine_line "$LOAD_START"
    echo
    echo "| data | first /healthz 200 | first read 200 | runs (/healthz) |"
    echo "|---|---:|---:|---|"
    echo "| $size MiB | $health ms | $read_ms ms | $runs_h ms |"
    echo
    echo "Target (PERFORMANCE.md): ≤ 1 s from start to the first served request after kill -9 with" \
        "1 GiB of data: $read_ms ms with $size MiB, $(met "$read_ms" "<=" 1000)."
} | tee "$BENCH_OUT/w7-latest.md"
