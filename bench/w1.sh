#!/usr/bin/env bash
# bench/w1.sh — workload W1 (stream append), Parley and its peers side by side.
#
#   bench/w1.sh            (or: make bench)
#
# Measures in RUNS rounds, after a warm-up, each peer in turn in every round,
# and prints a markdown table of the medians:
#   1. Parley            wrk, 64 connections POSTing a 1 KiB JSON object
#   2. reference server  the same wrk load against @durable-streams/server,
#                        file-backed (fdatasync per append, coalesced)
#   3. Redis             appendonly yes, appendfsync always; redis-benchmark
#                        XADD of the same 1 KiB payload, 64 connections
#   4. the disk          1 KiB write + fdatasync in a loop (bench/fsync_loop.c)
# Two variants: all connections on one stream, and spread over 64 streams.
#
# Everything listens on 127.0.0.1 only, keeps its data in a fresh directory
# under bench/out/ (which must not be tmpfs), and is stopped on exit.
#
# Knobs (environment): DURATION (s, default 10), WARMUP (s, 3), RUNS (3),
# CONNS (64), THREADS (2), STREAMS (64), REV (build and test that commit,
# taken with git archive, instead of the work tree), PARLEY (a binary to test
# instead of building one; default: the work tree, Release, in build-bench/),
# BENCH_OUT (default bench/out),
# KEEP=1 keeps the data directory, MAX_SECONDS (watchdog, default 600).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
STREAMS=${STREAMS:-64}
BENCH_OUT=${BENCH_OUT:-$HERE/out}
MAX_SECONDS=${MAX_SECONDS:-600}
KEEP=${KEEP:-0}

NAME=w1
TOOLS="wrk redis-server redis-benchmark redis-cli node npm curl cc cmake"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

want_ref=$(node -p 'require(process.argv[1]).dependencies["@durable-streams/server"]' "$HERE/package.json")
have_ref=$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
    "$HERE/node_modules/@durable-streams/server/package.json" 2>/dev/null || true)
if [ "$have_ref" != "$want_ref" ]; then
    log "installing the reference server ($want_ref) from package-lock.json"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi


# -------------------------------------------------------------- helpers ----
# The payload: the same 1024-byte JSON object that post.lua sends.
body_head='{"type":"message","role":"user","author":"bench","text":"'
body_tail='"}'
fill=$((1024 - ${#body_head} - ${#body_tail}))
words="the quick brown fox jumps over the lazy dog "
text=""
while [ ${#text} -lt "$fill" ]; do text="$text$words"; done
BODY="$body_head${text:0:$fill}$body_tail"
[ ${#BODY} -eq 1024 ] || die "payload is ${#BODY} bytes"

median() { sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print 0}'; }
field() { sed -n "s/.*[ ,]$1=\([0-9.]*\).*/\1/p"; }   # KEY from "KEY=VALUE" pairs

create_streams() {   # PORT PREFIX N
    local i code
    for ((i = 0; i < $3; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
            -H 'Content-Type: application/json' "http://127.0.0.1:$1$2$i")
        case "$code" in 200|201) ;; *) die "PUT $2$i on port $1 answered $code" ;; esac
    done
}

# Results: R[peer.variant.metric] = median; E[peer.variant] = error count.
declare -A R E PORT RN

variant_streams() { if [ "$1" = one ]; then echo 1; else echo "$STREAMS"; fi; }

wrk_run() {   # PORT VARIANT SECONDS OUTFILE
    local n
    n=$(variant_streams "$2")
    bg_wait timeout $(($3 + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${3}s" --timeout 10s --latency \
        -s "$HERE/post.lua" "http://127.0.0.1:$1" -- "/v1/stream/w1-$2-" "$n" "$THREADS" >"$4"
}

# Redis: the last CSV line of redis-benchmark is
# "test","rps","avg","min","p50","p95","p99","max" (latencies in ms); the
# test name holds the JSON payload, so the fields are counted from the end.
redis_run() {   # VARIANT REQUESTS OUTFILE
    local key extra=()
    if [ "$1" = one ]; then
        key="w1-one-0"
    else
        key="w1-many-__rand_int__"; extra=(-r "$STREAMS")
    fi
    redis-cli -p "${PORT[redis]}" FLUSHALL >/dev/null
    bg_wait timeout $((3 * DURATION + 60)) redis-benchmark -h 127.0.0.1 -p "${PORT[redis]}" \
        -c "$CONNS" --threads "$THREADS" -n "$2" "${extra[@]}" --csv XADD "$key" '*' m "$BODY" \
        >"$3.csv"
    tail -n 1 "$3.csv" | awk -F'","' '{gsub(/"/, "", $NF);
        printf "REDISRESULT rps=%s p50_us=%d p99_us=%d\n", $(NF - 6), $(NF - 3) * 1000, $(NF - 1) * 1000}' >"$3"
    grep -q '^REDISRESULT rps=[0-9]' "$3" || die "no result from redis-benchmark ($3.csv)"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------ start peers --
# All three servers run for the whole measurement, each on its own data
# directory; only one is under load at a time (an idle one costs nothing),
# and the rounds below interleave them so that a change in the machine's
# background load hits every peer alike.
PORT[parley]=$(free_port)
"$PARLEY" serve --listen "127.0.0.1:${PORT[parley]}" --data "$RUN_DIR/parley" --quiet \
    >"$RUN_DIR/parley.log" 2>&1 &
PIDS+=("$!")
wait_http "${PORT[parley]}" "$!"
log "Parley on 127.0.0.1:${PORT[parley]}"

PORT[reference]=$(free_port)
node "$HERE/reference-server.mjs" "${PORT[reference]}" "$RUN_DIR/reference" \
    >"$RUN_DIR/reference.log" 2>&1 &
PIDS+=("$!")
wait_http "${PORT[reference]}" "$!"
log "reference server on 127.0.0.1:${PORT[reference]}"

PORT[redis]=$(free_port)
mkdir -p "$RUN_DIR/redis"
redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --protected-mode yes --dir "$RUN_DIR/redis" \
    --appendonly yes --appendfsync always --save '' --auto-aof-rewrite-percentage 0 \
    --daemonize no --logfile "$RUN_DIR/redis/redis.log" &
pid=$!
PIDS+=("$pid")
for _ in $(seq 100); do
    redis-cli -p "${PORT[redis]}" PING 2>/dev/null | grep -q PONG && break
    kill -0 "$pid" 2>/dev/null || die "redis-server exited (see $RUN_DIR/redis/redis.log)"
    sleep 0.1
done
[ "$(redis-cli -p "${PORT[redis]}" CONFIG GET appendfsync | tail -n 1)" = always ] ||
    die "redis is not in appendfsync always"
log "Redis on 127.0.0.1:${PORT[redis]}"

# --------------------------------------------------------------- warm-up ---
# Creates the streams and warms every peer up on both variants; the Redis
# warm-up also sizes its runs (redis-benchmark takes a request count) to last
# about DURATION seconds.
for variant in one many; do
    for peer in parley reference; do
        create_streams "${PORT[$peer]}" "/v1/stream/w1-$variant-" "$(variant_streams $variant)"
        wrk_run "${PORT[$peer]}" "$variant" "$WARMUP" "$RUN_DIR/$peer-$variant-warmup.txt"
        : >"$RUN_DIR/$peer-$variant.res"
        E[$peer.$variant]=0
    done
    redis_run "$variant" 20000 "$RUN_DIR/redis-$variant-warmup.txt"
    rate=$(field rps <"$RUN_DIR/redis-$variant-warmup.txt")
    RN[$variant]=$(awk -v r="$rate" -v d="$DURATION" 'BEGIN {n = int(r * d);
        if (n < 10000) n = 10000; if (n > 3000000) n = 3000000; print n}')
    : >"$RUN_DIR/redis-$variant.res"
    log "warmed up: $variant; Redis runs of ${RN[$variant]} requests"
done
: >"$RUN_DIR/disk.res"

# ---------------------------------------------------------------- rounds ---
for ((run = 1; run <= RUNS; run++)); do
    for variant in one many; do
        for peer in parley reference; do
            out="$RUN_DIR/$peer-$variant-$run.txt"
            wrk_run "${PORT[$peer]}" "$variant" "$DURATION" "$out"
            line=$(grep '^W1RESULT' "$out") || die "no result from wrk ($out)"
            echo "$line" >>"$RUN_DIR/$peer-$variant.res"
            E[$peer.$variant]=$((${E[$peer.$variant]} + $(echo "$line" | field non2xx) +
                $(echo "$line" | field socket_errors)))
            log "round $run $peer $variant: $line"
        done
        redis_run "$variant" "${RN[$variant]}" "$RUN_DIR/redis-$variant-$run.txt"
        line=$(cat "$RUN_DIR/redis-$variant-$run.txt")
        echo "$line" >>"$RUN_DIR/redis-$variant.res"
        log "round $run redis $variant: $line"
    done
    bg_wait "$FSYNC_LOOP" "$RUN_DIR/fsync.dat" "$DURATION" 1024 >"$RUN_DIR/disk-$run.txt"
    line=$(cat "$RUN_DIR/disk-$run.txt")
    echo "$line" >>"$RUN_DIR/disk.res"
    log "round $run disk: $line"
done

for peer in parley reference redis; do
    for variant in one many; do
        R[$peer.$variant.rps]=$(field rps <"$RUN_DIR/$peer-$variant.res" | median)
        R[$peer.$variant.p50]=$(field p50_us <"$RUN_DIR/$peer-$variant.res" | median)
        R[$peer.$variant.p99]=$(field p99_us <"$RUN_DIR/$peer-$variant.res" | median)
    done
done
R[disk.rps]=$(field ops_per_s <"$RUN_DIR/disk.res" | median)
R[disk.p50]=$(field p50_us <"$RUN_DIR/disk.res" | median)
R[disk.p99]=$(field p99_us <"$RUN_DIR/disk.res" | median)

# -------------------------------------------------------------- report -----
int() {   # 12345.6 -> 12,346
    awk -v v="$1" 'BEGIN {s = sprintf("%d", v + 0.5); o = "";
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o}'
}
ms() { awk -v v="$1" 'BEGIN {printf "%.2f ms", v / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "n/a"}'; }
errnote() { [ "${E[$1]:-0}" = 0 ] || printf ' (%s errors)' "${E[$1]}"; }

commit=$COMMIT
if [ -z "$commit" ]; then
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit (with uncommitted changes)"
    fi
fi
label() { if [ "$1" = one ]; then echo "W1, 1 stream"; else echo "W1, $STREAMS streams"; fi; }

{
    echo "W1 stream append — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo
    echo "$CONNS connections, $THREADS load-generator threads, 1 KiB JSON body;" \
        "median of $RUNS runs of ${DURATION} s after a ${WARMUP} s warm-up," \
        "the peers taking turns in each round."
    echo "Machine: $(nproc) cores, $(uname -sr), data on $fstype;" \
        "load generator on the same machine; load average $LOAD_START at the start," \
        "$(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo
    echo "| workload | Parley req/s | p50 | p99 | reference req/s | Parley/reference | Redis always ops/s | Parley/Redis | disk fdatasync/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for v in one many; do
        echo "| $(label $v) | $(int "${R[parley.$v.rps]}")$(errnote parley.$v) | $(ms "${R[parley.$v.p50]}") | $(ms "${R[parley.$v.p99]}") | $(int "${R[reference.$v.rps]}")$(errnote reference.$v) | $(ratio "${R[parley.$v.rps]}" "${R[reference.$v.rps]}") | $(int "${R[redis.$v.rps]}") | $(ratio "${R[parley.$v.rps]}" "${R[redis.$v.rps]}") | $(int "${R[disk.rps]}") |"
    done
    echo
    echo "Peer latencies (medians of the runs' p50 / p99):"
    echo
    echo "| workload | reference p50 | reference p99 | Redis p50 | Redis p99 | disk write+fdatasync p50 | p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for v in one many; do
        echo "| $(label $v) | $(ms "${R[reference.$v.p50]}") | $(ms "${R[reference.$v.p99]}") | $(ms "${R[redis.$v.p50]}") | $(ms "${R[redis.$v.p99]}") | $(ms "${R[disk.p50]}") | $(ms "${R[disk.p99]}") |"
    done
    echo
    echo "Targets (PERFORMANCE.md): ≥ 40× the reference, ≥ 0.5× Redis always, ≥ 50,000/s."
    for v in one many; do
        awk -v p="${R[parley.$v.rps]}" -v f="${R[reference.$v.rps]}" -v r="${R[redis.$v.rps]}" -v l="$(label $v)" 'BEGIN {
            printf "- %s: %s the reference (%.1f×), %s Redis (%.2f×), %s 50,000/s\n", l,
                (f > 0 && p >= 40 * f) ? "meets 40×" : "below 40×", (f > 0 ? p / f : 0),
                (r > 0 && p >= 0.5 * r) ? "meets 0.5×" : "below 0.5×", (r > 0 ? p / r : 0),
                (p >= 50000) ? "meets" : "below" }'
    done
} | tee "$BENCH_OUT/w1-latest.md"
