#!/usr/bin/env bash
# bench/w5.sh — workloads W5 (live fan-out) and W6 (idle SSE subscribers).
#
#   bench/w5.sh            (make bench runs it)
#
# W5: W5_SUBSCRIBERS (1,000) SSE subscribers on one JSON stream
#     (?offset=now&live=sse) while appends of W5_BYTES (256) arrive
#     W5_RATE (100) times a second; latency from each append's 2xx to its
#     receipt at every subscriber, p50/p99. The load generator is
#     bench/sse_fanout.c (C, epoll; the writer in one process and the
#     subscribers spread over W5_PROCS more, sharing CLOCK_MONOTONIC and
#     the receipts through shared memory). Its own overhead is measured the same way against
#     bench/sse_source.c, a no-op SSE source that answers each append 204
#     and sends it to every subscriber, storing nothing. RUNS rounds, Parley
#     and the no-op source taking turns.
# W6: W6_SUBSCRIBERS (10,000) idle SSE subscribers on a fresh Parley: its
#     RSS (VmRSS) with them connected minus before, over N; the kernel's TCP
#     memory (/proc/net/sockstat, both ends of every connection, since the
#     generator is on the same machine) beside it.
#
# Both use Parley's default settings (SSE connections recycled after 60 s,
# longer than any one generator run here).
#
# Knobs (environment): DURATION (s, 10), WARMUP (s, 3), RUNS (3),
# W5_SUBSCRIBERS (1000), W5_RATE (100), W5_BYTES (256), W5_WRITERS (4), W5_PROCS (2),
# W6_SUBSCRIBERS (10000), ONLY (w5 or w6: run one of them), REV, PARLEY,
# BENCH_OUT, KEEP, MAX_SECONDS (watchdog, 600); see README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-3}
W5_SUBSCRIBERS=${W5_SUBSCRIBERS:-1000}
W5_RATE=${W5_RATE:-100}
W5_BYTES=${W5_BYTES:-256}
W5_WRITERS=${W5_WRITERS:-4}
W5_PROCS=${W5_PROCS:-2}
W6_SUBSCRIBERS=${W6_SUBSCRIBERS:-10000}
ONLY=${ONLY:-}
BENCH_OUT=${BENCH_OUT:-$HERE/out}
MAX_SECONDS=${MAX_SECONDS:-600}
KEEP=${KEEP:-0}

NAME=w5
TOOLS="curl cc cmake"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

FANOUT="$BENCH_OUT/sse_fanout"
SOURCE="$BENCH_OUT/sse_source"
cc -O2 -Wall -Wextra -o "$FANOUT" "$HERE/sse_fanout.c"
cc -O2 -Wall -Wextra -o "$SOURCE" "$HERE/sse_source.c"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STREAM=/v1/stream/w5
declare -A R

start_parley() {   # DIR -> PARLEY_PID, PORT
    PORT=$(free_port)
    "$PARLEY" serve --listen "127.0.0.1:$PORT" --data "$1" --quiet >"$1.log" 2>&1 &
    PARLEY_PID=$!
    PIDS+=("$PARLEY_PID")
    wait_http "$PORT" "$PARLEY_PID"
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        "http://127.0.0.1:$PORT$STREAM")
    case "$code" in 200|201) ;; *) die "PUT $STREAM answered $code" ;; esac
}
stop_parley() {
    kill -TERM "$PARLEY_PID" 2>/dev/null || true
    wait "$PARLEY_PID" 2>/dev/null || true
}
cpu_ns() { thread_cpu "$1" | awk '{s += $3} END {printf "%.0f", s}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
tcp_mem_kib() {   # the kernel's TCP buffer memory, in KiB (sockstat counts pages)
    awk -v pg="$(getconf PAGESIZE)" '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) * pg / 1024}' /proc/net/sockstat
}
tcp_inuse() { awk '$1 == "TCP:" {print $3}' /proc/net/sockstat; }

fanout_run() {   # PORT OUTFILE SECONDS
    bg_wait timeout $((WARMUP + $3 + 90)) "$FANOUT" fanout -p "$1" -s "$STREAM?offset=now&live=sse" \
        -a "$STREAM" -n "$W5_SUBSCRIBERS" -r "$W5_RATE" -b "$W5_BYTES" -W "$W5_WRITERS" \
        -P "$W5_PROCS" \
        -w "$WARMUP" -d "$3" >"$2"
    grep -q '^SSERESULT' "$2" || die "no result from sse_fanout ($2)"
}

# -------------------------------------------------------------------- W5 ---
if [ "$ONLY" != w6 ]; then
    start_parley "$RUN_DIR/parley-w5"
    P5=$PORT
    SRC_PORT=$(free_port)
    "$SOURCE" "$SRC_PORT" 2>"$RUN_DIR/source.log" &
    PIDS+=("$!")
    for _ in $(seq 50); do port_free "$SRC_PORT" || break; sleep 0.1; done
    log "W5: Parley on $P5, the no-op source on $SRC_PORT; $W5_SUBSCRIBERS subscribers, $W5_RATE appends/s"
    : >"$RUN_DIR/parley.res"
    : >"$RUN_DIR/source.res"
    for ((run = 1; run <= RUNS; run++)); do
        c0=$(cpu_ns "$PARLEY_PID")
        fanout_run "$P5" "$RUN_DIR/parley-$run.txt" "$DURATION"
        c1=$(cpu_ns "$PARLEY_PID")
        line="$(grep '^SSERESULT' "$RUN_DIR/parley-$run.txt") server_cpu_ns=$((c1 - c0))"
        echo "$line" >>"$RUN_DIR/parley.res"
        log "round $run Parley: $line"
        fanout_run "$SRC_PORT" "$RUN_DIR/source-$run.txt" "$DURATION"
        line=$(grep '^SSERESULT' "$RUN_DIR/source-$run.txt")
        echo "$line" >>"$RUN_DIR/source.res"
        log "round $run no-op source: $line"
    done
    kill -0 "$PARLEY_PID" 2>/dev/null || die "Parley exited during W5 (see $RUN_DIR/parley-w5.log)"
    stop_parley
    for peer in parley source; do
        for m in p50_us p99_us max_us send_p50_us send_p99_us append_p50_us append_p99_us gen_cpu_pct rate_per_s; do
            R[$peer.$m]=$(field "$m" <"$RUN_DIR/$peer.res" | median)
        done
        R[$peer.missing]=$(field missing <"$RUN_DIR/$peer.res" | awk '{s += $1} END {print s + 0}')
        R[$peer.expected]=$(field expected <"$RUN_DIR/$peer.res" | awk '{s += $1} END {print s + 0}')
        R[$peer.early]=$(field early <"$RUN_DIR/$peer.res" | awk '{s += $1} END {print s + 0}')
        R[$peer.late]=$(field late_ticks <"$RUN_DIR/$peer.res" | awk '{s += $1} END {print s + 0}')
        R[$peer.errors]=$(field append_errors <"$RUN_DIR/$peer.res" | awk '{s += $1} END {print s + 0}')
    done
    # Parley's CPU over the measured window and the warm-up, as % of one core.
    R[parley.cpu_pct]=$(awk -v d="$DURATION" -v w="$WARMUP" '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%.1f\n", v["server_cpu_ns"] / 1e9 / (d + w) * 100 }' "$RUN_DIR/parley.res" | median)
fi

# -------------------------------------------------------------------- W6 ---
if [ "$ONLY" != w5 ]; then
    start_parley "$RUN_DIR/parley-w6"
    # Warm-up: a few subscribers come and go, so that every worker thread
    # has served one (its buffers and allocator arenas exist before the
    # measurement starts).
    bg_wait timeout 60 "$FANOUT" idle -p "$PORT" -s "$STREAM?offset=now&live=sse" -n 200 -d 1 \
        >"$RUN_DIR/w6-warmup.txt"
    sleep 1
    RSS0=$(rss_kib "$PARLEY_PID") TCP0=$(tcp_mem_kib) INUSE0=$(tcp_inuse)
    log "W6: Parley on $PORT, RSS $RSS0 KiB before; opening $W6_SUBSCRIBERS subscribers"
    "$FANOUT" idle -p "$PORT" -s "$STREAM?offset=now&live=sse" -n "$W6_SUBSCRIBERS" -d 120 \
        >"$RUN_DIR/w6.txt" 2>"$RUN_DIR/w6.err" &
    gen=$!
    PIDS+=("$gen")
    for _ in $(seq 900); do
        grep -q '^READY' "$RUN_DIR/w6.txt" && break
        kill -0 "$gen" 2>/dev/null || die "sse_fanout exited: $(cat "$RUN_DIR/w6.err")"
        sleep 0.1
    done
    grep -q '^READY' "$RUN_DIR/w6.txt" || die "the subscribers did not connect in 90 s"
    sleep 2   # let anything the connections started settle
    RSS1=$(rss_kib "$PARLEY_PID") TCP1=$(tcp_mem_kib) INUSE1=$(tcp_inuse)
    FDS=$(find "/proc/$PARLEY_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    kill -TERM "$gen" 2>/dev/null || true
    wait "$gen" 2>/dev/null || true
    grep -q '^IDLERESULT.* closed=0 ' "$RUN_DIR/w6.txt" ||
        die "subscribers were closed while idle: $(grep IDLERESULT "$RUN_DIR/w6.txt")"
    sleep 2
    RSS2=$(rss_kib "$PARLEY_PID")
    kill -0 "$PARLEY_PID" 2>/dev/null || die "Parley exited during W6"
    stop_parley
    R[w6.per]=$(awk -v a="$RSS0" -v b="$RSS1" -v n="$W6_SUBSCRIBERS" 'BEGIN {printf "%.2f", (b - a) / n}')
    R[w6.tcp_per]=$(awk -v a="$TCP0" -v b="$TCP1" -v n="$W6_SUBSCRIBERS" 'BEGIN {printf "%.2f", (b - a) / n}')
    R[w6.connect_s]=$(sed -n 's/^READY .*connect_s=\([0-9.]*\).*/\1/p' "$RUN_DIR/w6.txt")
    log "W6: RSS $RSS0 -> $RSS1 KiB (after they left: $RSS2 KiB), $FDS fds, TCP sockets $INUSE0 -> $INUSE1"
fi

# -------------------------------------------------------------- report -----
commit=$(commit_label)
us_ms() { ms "$1"; }
{
    if [ "$ONLY" != w6 ]; then
        echo "w5.parley.p50_us=${R[parley.p50_us]}"
        echo "w5.parley.p99_us=${R[parley.p99_us]}"
        echo "w5.source.p50_us=${R[source.p50_us]}"
        echo "w5.source.p99_us=${R[source.p99_us]}"
        echo "w5.parley.missing=${R[parley.missing]}"
        echo "w5.subscribers=$W5_SUBSCRIBERS"
    fi
    if [ "$ONLY" != w5 ]; then
        echo "w6.kib_per_subscriber=${R[w6.per]}"
        echo "w6.tcp_kib_per_subscriber=${R[w6.tcp_per]}"
        echo "w6.subscribers=$W6_SUBSCRIBERS"
    fi
} >"$BENCH_OUT/w5-summary.txt"

{
    if [ "$ONLY" != w6 ]; then
        echo "### W5 live fan-out — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
        echo
        echo "$(int "$W5_SUBSCRIBERS") SSE subscribers on one JSON stream (\`?offset=now&live=sse\`)," \
            "appends of $W5_BYTES bytes at $W5_RATE/s over $W5_WRITERS connections; latency from" \
            "each append's 2xx to its receipt at each subscriber, over every (subscriber, message)" \
            "pair. Load generator \`sse_fanout\` (C, epoll; the writer in one process, the subscribers in $W5_PROCS more); its own overhead is the" \
            "no-op source row (\`sse_source\`: answers 204, then sends the event to every" \
            "subscriber, stores nothing). Median of $RUNS runs of ${DURATION} s after ${WARMUP} s" \
            "of appends not measured, the two taking turns."
        machine_line "$LOAD_START"
        echo
        echo "| server | 2xx→receipt p50 | p99 | max | send→receipt p50 | p99 | append p50 | append p99 | appends/s | deliveries missing | before the 2xx | generator CPU | server CPU |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for peer in parley source; do
            if [ "$peer" = parley ]; then label=Parley; scpu="${R[parley.cpu_pct]} %"; else label="no-op source"; scpu=""; fi
            echo "| $label | $(ms "${R[$peer.p50_us]}") | $(ms "${R[$peer.p99_us]}") | $(ms "${R[$peer.max_us]}") | $(ms "${R[$peer.send_p50_us]}") | $(ms "${R[$peer.send_p99_us]}") | $(ms "${R[$peer.append_p50_us]}") | $(ms "${R[$peer.append_p99_us]}") | ${R[$peer.rate_per_s]} | $(int "${R[$peer.missing]}") of $(int "${R[$peer.expected]}") | $(int "${R[$peer.early]}") | ${R[$peer.gen_cpu_pct]} % | $scpu |"
        done
        echo
        echo "\"before the 2xx\": receipts that arrived before the append's answer (counted as 0 ms)." \
            "Append latency is the writer's, send to 2xx (each append fsynced on Parley)." \
            "Generator and server CPU are % of one core; ticks that found all writer connections busy: Parley ${R[parley.late]}, no-op ${R[source.late]}; non-2xx appends: Parley ${R[parley.errors]}."
        echo
        echo "Target (PERFORMANCE.md): p99 ≤ 10 ms from 2xx to receipt with 1,000 subscribers:" \
            "$(ms "${R[parley.p99_us]}") with $(int "$W5_SUBSCRIBERS"), $(met "${R[parley.p99_us]}" "<=" 10000)" \
            "(the generator alone: p99 $(ms "${R[source.p99_us]}"))."
        echo
    fi
    if [ "$ONLY" != w5 ]; then
        echo "### W6 idle SSE subscribers — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
        echo
        echo "A fresh Parley (default settings, warmed up by 200 subscribers that came and went);" \
            "\`sse_fanout idle\` opens $(int "$W6_SUBSCRIBERS") SSE subscriptions to one stream" \
            "(\`?offset=now&live=sse\`, at most 200 connecting at once; all connected in" \
            "${R[w6.connect_s]} s), waits until each has its first event, then 2 s."
        echo
        echo "| | before | with $(int "$W6_SUBSCRIBERS") subscribers | per subscriber |"
        echo "|---|---:|---:|---:|"
        echo "| Parley RSS (VmRSS) | $(int "$RSS0") KiB | $(int "$RSS1") KiB | **${R[w6.per]} KiB** |"
        echo "| kernel TCP buffer memory (sockstat, both ends) | $(int "$TCP0") KiB | $(int "$TCP1") KiB | ${R[w6.tcp_per]} KiB |"
        echo "| TCP sockets in use (both ends) | $(int "$INUSE0") | $(int "$INUSE1") | |"
        echo
        echo "Parley held $(int "$FDS") file descriptors; its RSS 2 s after the subscribers left:" \
            "$(int "$RSS2") KiB. The kernel's socket structures themselves (slab) are not in either figure."
        echo
        echo "Target (PERFORMANCE.md): ≤ 8 KiB per idle subscriber at 10,000: ${R[w6.per]} KiB" \
            "with $(int "$W6_SUBSCRIBERS"), $(met "${R[w6.per]}" "<=" 8)."
    fi
} | tee "$BENCH_OUT/w5-latest.md"
