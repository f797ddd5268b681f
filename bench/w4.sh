#!/usr/bin/env bash
# bench/w4.sh — workload W4 (catch-up reads): small reads at random offsets
# of a large stream, against nginx serving a static file of the same size.
#
#   bench/w4.sh            (make bench runs it)
#
# 1. A catch-up read is one response from its offset to the tail (Parley
#    has no page cap: a client that stops after one response would
#    otherwise miss data). Small reads are therefore reads near the tail,
#    which is what a resuming client makes: each read starts at a random
#    one of the last W4_READ_MESSAGES (4) messages, so it returns 1 to 4
#    messages.
# 2. A JSON stream is filled with W4_MIB (64) MiB of the 1 KiB message of
#    post.lua, one message per append (an append is one chunk, and a read
#    returns whole chunks: big appends would make big reads), by wrk with
#    64 connections (w4.lua, load mode).
# 3. The largest of those reads (W4_READ_MESSAGES messages) gives the body
#    nginx serves as a static file (application/json, sendfile): nginx
#    always sends the largest body, so the ratio errs in nginx's favour.
# 4. RUNS rounds of DURATION seconds, Parley and nginx taking turns: wrk, 64
#    connections, each request GET ?offset=<random message index> (w4.lua,
#    read mode). The same query string goes to nginx, which ignores it.
#
# Knobs (environment): DURATION (s, 10), WARMUP (s, 3), RUNS (3), CONNS
# (64), THREADS (2), W4_MIB (64), W4_READ_MESSAGES (4), REV, PARLEY,
# BENCH_OUT, KEEP, MAX_SECONDS (watchdog, 600); see README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
W4_MIB=${W4_MIB:-64}
W4_READ_MESSAGES=${W4_READ_MESSAGES:-4}
BENCH_OUT=${BENCH_OUT:-$HERE/out}
MAX_SECONDS=${MAX_SECONDS:-600}
KEEP=${KEEP:-0}

NAME=w4
TOOLS="wrk nginx curl cc cmake"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STREAM=/v1/stream/w4
declare -A R E

# ---------------------------------------------------------- start Parley ---
PORT=$(free_port)
"$PARLEY" serve --listen "127.0.0.1:$PORT" --data "$RUN_DIR/parley" --quiet \
    >"$RUN_DIR/parley.log" 2>&1 &
PARLEY_PID=$!
PIDS+=("$PARLEY_PID")
wait_http "$PORT" "$PARLEY_PID"
BASE="http://127.0.0.1:$PORT"
log "Parley on 127.0.0.1:$PORT"

tail_of() {   # the stream's tail, in messages
    curl -s -I "$BASE$STREAM" | tr -d '\r' |
        sed -n 's/^[Ss]tream-[Nn]ext-[Oo]ffset: [0-9]*_0*\([0-9][0-9]*\)$/\1/p'
}

code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' "$BASE$STREAM")
case "$code" in 200|201) ;; *) die "PUT $STREAM answered $code" ;; esac

# ------------------------------------------------------ build the stream ---
# wrk has no request count: each thread stops sending after its share, and
# the loop goes on until the tail is reached (wrk still waits out -d).
target=$((W4_MIB * 1024))
t0=$SECONDS
n=0
while :; do
    n=$(tail_of)
    [ -n "$n" ] || die "no Stream-Next-Offset from HEAD $STREAM"
    [ "$n" -lt "$target" ] || break
    [ $((SECONDS - t0)) -lt $((MAX_SECONDS / 2)) ] || die "the stream grew too slowly ($n of $target messages)"
    bg_wait timeout 60 wrk -t"$THREADS" -c"$CONNS" -d3s --timeout 10s -s "$HERE/w4.lua" "$BASE" \
        -- load "$STREAM" $((target - n)) "$THREADS" >"$RUN_DIR/load.txt"
    grep -q 'W4RESULT.* non2xx=0 socket_errors=0' "$RUN_DIR/load.txt" ||
        die "appends failed: $(grep W4RESULT "$RUN_DIR/load.txt")"
done
MESSAGES=$n
data_mib=$(du -sm "$RUN_DIR/parley" | cut -f1)
log "stream of $MESSAGES messages of 1 KiB in $((SECONDS - t0)) s; data directory $data_mib MiB"

# The largest read: its size, and the file nginx serves.
start_nginx_dir="$RUN_DIR/nginx"
mkdir -p "$start_nginx_dir/www/static"
MINOFF=$((MESSAGES - W4_READ_MESSAGES))
MAXOFF=$((MESSAGES - 1))
code=$(curl -s -o "$start_nginx_dir/www/static/w4.json" -w '%{http_code}' \
    "$BASE$STREAM?offset=0000000000000000_$(printf '%016d' "$MINOFF")")
[ "$code" = 200 ] || die "a read answered $code"
PAGE=$(stat -c %s "$start_nginx_dir/www/static/w4.json")
PER_PAGE=$(grep -o '"author":"bench"' "$start_nginx_dir/www/static/w4.json" | wc -l)
[ "$PER_PAGE" = "$W4_READ_MESSAGES" ] || die "the read at offset $MINOFF holds $PER_PAGE messages"
log "reads return 1 to $PER_PAGE messages, at most $PAGE bytes; offsets $MINOFF..$MAXOFF"

NGINX_PORT=$(free_port)
start_nginx "$NGINX_PORT" "$start_nginx_dir"
NGINX="http://127.0.0.1:$NGINX_PORT"
code=$(curl -s -o "$RUN_DIR/nginx.json" -w '%{http_code}' "$NGINX/static/w4.json?offset=1")
[ "$code" = 200 ] && cmp -s "$RUN_DIR/nginx.json" "$start_nginx_dir/www/static/w4.json" ||
    die "nginx does not serve the page ($code)"
log "nginx (static file of $PAGE bytes) on 127.0.0.1:$NGINX_PORT"

read_run() {   # PEER SECONDS OUTFILE
    local base=$BASE path=$STREAM
    if [ "$1" = nginx ]; then base=$NGINX path=/static/w4.json; fi
    bg_wait timeout $(($2 + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${2}s" --timeout 10s --latency \
        -s "$HERE/w4.lua" "$base" -- read "$path" "$MAXOFF" "$MINOFF" >"$3"
    grep -q '^W4RESULT' "$3" || die "no result from wrk ($3)"
}

# ---------------------------------------------------------------- rounds ---
for peer in parley nginx; do
    read_run "$peer" "$WARMUP" "$RUN_DIR/$peer-warmup.txt"
    : >"$RUN_DIR/$peer.res"
    E[$peer]=0
done
for ((run = 1; run <= RUNS; run++)); do
    for peer in parley nginx; do
        read_run "$peer" "$DURATION" "$RUN_DIR/$peer-$run.txt"
        line=$(grep '^W4RESULT' "$RUN_DIR/$peer-$run.txt")
        echo "$line" >>"$RUN_DIR/$peer.res"
        E[$peer]=$((${E[$peer]} + $(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors)))
        log "round $run $peer: $line"
    done
done
kill -0 "$PARLEY_PID" 2>/dev/null || die "Parley exited during the run (see $RUN_DIR/parley.log)"

for peer in parley nginx; do
    for m in rps p50_us p99_us bytes_per_response; do
        R[$peer.$m]=$(field "$m" <"$RUN_DIR/$peer.res" | median)
    done
done

# -------------------------------------------------------------- report -----
commit=$(commit_label)
w4ratio=$(awk -v a="${R[parley.rps]}" -v b="${R[nginx.rps]}" 'BEGIN {print (b > 0) ? a / b : 0}')
errnote() { [ "${E[$1]:-0}" = 0 ] || printf ' (%s errors)' "$(int "${E[$1]}")"; }
{
    echo "w4.parley.rps=${R[parley.rps]}"
    echo "w4.nginx.rps=${R[nginx.rps]}"
    echo "w4.parley.p99_us=${R[parley.p99_us]}"
    echo "w4.ratio=$w4ratio"
    echo "w4.page_bytes=$PAGE"
    echo "w4.messages=$MESSAGES"
    echo "w4.errors=$((${E[parley]} + ${E[nginx]}))"
} >"$BENCH_OUT/w4-summary.txt"

{
    echo "### W4 catch-up reads — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo
    echo "A JSON stream of $(int "$MESSAGES") messages of 1 KiB (one per append; data directory" \
        "$data_mib MiB). Every read starts at a random one of the last $PER_PAGE messages and" \
        "returns 1 to $PER_PAGE of them (a catch-up read goes to the tail: small reads are reads" \
        "near the tail, as a resuming client makes). nginx serves the largest of those bodies," \
        "$(int "$PAGE") bytes, as a static file (sendfile), the query string ignored." \
        "$CONNS connections, $THREADS load-generator threads; median of $RUNS runs of ${DURATION} s" \
        "after a ${WARMUP} s warm-up, the two taking turns in each round."
    machine_line "$LOAD_START"
    echo
    echo "| peer | req/s | p50 | p99 | bytes per response (headers included) |"
    echo "|---|---:|---:|---:|---:|"
    echo "| Parley, random offsets near the tail | $(int "${R[parley.rps]}")$(errnote parley) | $(ms "${R[parley.p50_us]}") | $(ms "${R[parley.p99_us]}") | $(int "${R[parley.bytes_per_response]}") |"
    echo "| nginx, static file | $(int "${R[nginx.rps]}")$(errnote nginx) | $(ms "${R[nginx.p50_us]}") | $(ms "${R[nginx.p99_us]}") | $(int "${R[nginx.bytes_per_response]}") |"
    echo
    echo "Target (PERFORMANCE.md): ≥ 0.8× nginx serving a static file of the same size:" \
        "$(ratio "${R[parley.rps]}" "${R[nginx.rps]}"), $(met "$w4ratio" ">=" 0.8)."
} | tee "$BENCH_OUT/w4-latest.md"
