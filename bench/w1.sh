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
#   5. nginx             the no-op HTTP server: the same wrk load against
#                        nginx answering `return 204` (one worker)
#   6. libmicrohttpd     the HTTP library alone (bench/mhd_noop.c): started
#                        as Parley's transport starts it, reading each body
#                        and answering 204; what is left of the gap between
#                        it and nginx is the library's own
# Two variants: all connections on one stream, and spread over 64 streams.
# During Parley's runs it also reads the CPU time of each of its threads
# (/proc/PID/task/*/schedstat) before and after, and divides the writer
# thread's time by the appends and the HTTP workers' time by the requests.
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
TOOLS="wrk nginx redis-server redis-benchmark redis-cli node npm curl cc cmake"
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
PEERS="parley reference nginx mhd"   # the HTTP peers, all driven by the same wrk load

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
PARLEY_PID=$!
PIDS+=("$PARLEY_PID")
wait_http "${PORT[parley]}" "$PARLEY_PID"
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

PORT[nginx]=$(free_port)
start_nginx "${PORT[nginx]}" "$RUN_DIR/nginx"
log "nginx (return 204) on 127.0.0.1:${PORT[nginx]}"

cc -O2 -Wall -Wextra -o "$BENCH_OUT/mhd_noop" "$HERE/mhd_noop.c" -lmicrohttpd
PORT[mhd]=$(free_port)
"$BENCH_OUT/mhd_noop" "${PORT[mhd]}" >"$RUN_DIR/mhd.log" 2>&1 &
MHD_PID=$!
PIDS+=("$MHD_PID")
wait_http "${PORT[mhd]}" "$MHD_PID"
log "libmicrohttpd no-op (204) on 127.0.0.1:${PORT[mhd]}"

# --------------------------------------------------------------- warm-up ---
# Creates the streams and warms every peer up on both variants; the Redis
# warm-up also sizes its runs (redis-benchmark takes a request count) to last
# about DURATION seconds.
WRITER_TID=0 WRITER_HOW=none
for variant in one many; do
    for peer in $PEERS; do
        [ "$peer" = nginx ] || [ "$peer" = mhd ] ||
            create_streams "${PORT[$peer]}" "/v1/stream/w1-$variant-" "$(variant_streams $variant)"
        if [ "$peer" = parley ] && [ "$variant" = one ]; then
            # Which thread is the writer: sampled while the warm-up loads it.
            find_writer "$PARLEY_PID" $((WARMUP > 1 ? WARMUP - 1 : 1)) >"$RUN_DIR/writer.txt" &
            finder=$!
            wrk_run "${PORT[$peer]}" "$variant" "$WARMUP" "$RUN_DIR/$peer-$variant-warmup.txt"
            wait "$finder" || true
            read -r WRITER_TID WRITER_HOW <"$RUN_DIR/writer.txt"
            log "writer thread: $WRITER_TID (found by $WRITER_HOW)"
            thread_cpu "$PARLEY_PID" >"$RUN_DIR/threads.txt"
        else
            wrk_run "${PORT[$peer]}" "$variant" "$WARMUP" "$RUN_DIR/$peer-$variant-warmup.txt"
        fi
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
        for peer in $PEERS; do
            out="$RUN_DIR/$peer-$variant-$run.txt"
            [ "$peer" != parley ] || thread_cpu "$PARLEY_PID" >"$out.cpu0"
            [ "$peer" != mhd ] || thread_cpu "$MHD_PID" >"$out.cpu0"
            wrk_run "${PORT[$peer]}" "$variant" "$DURATION" "$out"
            line=$(grep '^W1RESULT' "$out") || die "no result from wrk ($out)"
            if [ "$peer" = parley ]; then
                thread_cpu "$PARLEY_PID" >"$out.cpu1"
                line="$line $(cpu_split "$out.cpu0" "$out.cpu1" "$WRITER_TID")"
            elif [ "$peer" = mhd ]; then
                thread_cpu "$MHD_PID" >"$out.cpu1"
                line="$line $(cpu_split "$out.cpu0" "$out.cpu1" 0)"
            fi
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

for peer in $PEERS redis; do
    for variant in one many; do
        R[$peer.$variant.rps]=$(field rps <"$RUN_DIR/$peer-$variant.res" | median)
        R[$peer.$variant.p50]=$(field p50_us <"$RUN_DIR/$peer-$variant.res" | median)
        R[$peer.$variant.p99]=$(field p99_us <"$RUN_DIR/$peer-$variant.res" | median)
    done
done
# CPU per append (µs), per run, then the median: the writer's time over the
# requests answered (each a 1 KiB append), the HTTP workers' likewise.
for variant in one many; do
    for part in writer http other; do
        R[parley.$variant.$part]=$(awk -v k="${part}_ns" '{
            for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            if (v["requests"] > 0) printf "%.3f\n", v[k] / 1000 / v["requests"] }' \
            "$RUN_DIR/parley-$variant.res" | median)
    done
    R[mhd.$variant.http]=$(awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        if (v["requests"] > 0) printf "%.3f\n", v["http_ns"] / 1000 / v["requests"] }' \
        "$RUN_DIR/mhd-$variant.res" | median)
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
us() { awk -v v="$1" 'BEGIN {printf "%.1f µs", v}'; }
verdict() { if [ "$1" = 1 ]; then echo met; else echo "**not met**"; fi; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {print (a >= b) ? 1 : 0}'; }   # 1 if A >= B
le() { awk -v a="$1" -v b="$2" 'BEGIN {print (a <= b) ? 1 : 0}'; }

# The machine-readable summary that bench/run.sh turns into RESULTS.md.
{
    for v in one many; do
        for k in rps p50 p99; do
            for peer in $PEERS redis; do echo "w1.$v.$peer.$k=${R[$peer.$v.$k]}"; done
        done
        for part in writer http other; do echo "w1.$v.cpu.$part=${R[parley.$v.$part]}"; done
        echo "w1.$v.cpu.mhd_http=${R[mhd.$v.http]}"
        echo "w1.$v.errors=$((${E[parley.$v]} + ${E[nginx.$v]}))"
    done
    echo "w1.disk.rps=${R[disk.rps]}"
    echo "w1.writer_how=$WRITER_HOW"
    echo "w1.commit=$commit"
} >"$BENCH_OUT/w1-summary.txt"

{
    echo "### W1 stream append — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo
    echo "$CONNS connections, $THREADS load-generator threads, 1 KiB JSON body;" \
        "median of $RUNS runs of ${DURATION} s after a ${WARMUP} s warm-up," \
        "the peers taking turns in each round."
    echo "Machine: $(nproc) cores, $(uname -sr), data on $fstype;" \
        "load generator on the same machine; load average $LOAD_START at the start," \
        "$(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo
    echo "| workload | Parley req/s | p50 | p99 | nginx 204 req/s | Parley/nginx | libmicrohttpd no-op req/s | libmicrohttpd/nginx | reference req/s | Parley/reference | Redis always ops/s | Parley/Redis | disk fdatasync/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for v in one many; do
        echo "| $(label $v) | $(int "${R[parley.$v.rps]}")$(errnote parley.$v) | $(ms "${R[parley.$v.p50]}") | $(ms "${R[parley.$v.p99]}") | $(int "${R[nginx.$v.rps]}")$(errnote nginx.$v) | $(ratio "${R[parley.$v.rps]}" "${R[nginx.$v.rps]}") | $(int "${R[mhd.$v.rps]}")$(errnote mhd.$v) | $(ratio "${R[mhd.$v.rps]}" "${R[nginx.$v.rps]}") | $(int "${R[reference.$v.rps]}")$(errnote reference.$v) | $(ratio "${R[parley.$v.rps]}" "${R[reference.$v.rps]}") | $(int "${R[redis.$v.rps]}") | $(ratio "${R[parley.$v.rps]}" "${R[redis.$v.rps]}") | $(int "${R[disk.rps]}") |"
    done
    echo
    echo "Peer latencies (medians of the runs' p50 / p99):"
    echo
    echo "| workload | nginx p50 | nginx p99 | reference p50 | reference p99 | Redis p50 | Redis p99 | disk write+fdatasync p50 | p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for v in one many; do
        echo "| $(label $v) | $(ms "${R[nginx.$v.p50]}") | $(ms "${R[nginx.$v.p99]}") | $(ms "${R[reference.$v.p50]}") | $(ms "${R[reference.$v.p99]}") | $(ms "${R[redis.$v.p50]}") | $(ms "${R[redis.$v.p99]}") | $(ms "${R[disk.p50]}") | $(ms "${R[disk.p99]}") |"
    done
    echo
    echo "Parley's CPU per request, by thread (medians of the runs; on-CPU time from" \
        "/proc/PID/task/*/schedstat before and after each run, over the requests answered;" \
        "every request is one 1 KiB append). The writer thread was found by $WRITER_HOW" \
        "(tid $WRITER_TID); HTTP is the libmicrohttpd workers (threads named MHD-*); other is" \
        "every other thread (the main thread, the hub's timer, the checkpointer, webhook delivery)."
    echo
    echo "| workload | writer µs/append | HTTP µs/request | other µs/request | total µs/request | libmicrohttpd alone: its workers' µs/request |"
    echo "|---|---:|---:|---:|---:|---:|"
    for v in one many; do
        echo "| $(label $v) | $(us "${R[parley.$v.writer]}") | $(us "${R[parley.$v.http]}") | $(us "${R[parley.$v.other]}") | $(us "$(awk -v a="${R[parley.$v.writer]}" -v b="${R[parley.$v.http]}" -v c="${R[parley.$v.other]}" 'BEGIN {print a + b + c}')") | $(us "${R[mhd.$v.http]}") |"
    done
    echo
    echo "Targets (PERFORMANCE.md): ≥ 0.7× the no-op nginx on 1 and on $STREAMS streams;" \
        "$STREAMS streams never slower than 1; writer ≤ 10 µs CPU per append, HTTP ≤ 15 µs per request."
    for v in one many; do
        echo "- $(label $v): $(ratio "${R[parley.$v.rps]}" "${R[nginx.$v.rps]}") nginx," \
            "$(verdict "$(ge "${R[parley.$v.rps]}" "$(awk -v n="${R[nginx.$v.rps]}" 'BEGIN {print 0.7 * n}')")");" \
            "writer $(us "${R[parley.$v.writer]}"), $(verdict "$(le "${R[parley.$v.writer]}" 10)");" \
            "HTTP $(us "${R[parley.$v.http]}"), $(verdict "$(le "${R[parley.$v.http]}" 15)")"
    done
    echo "- $STREAMS streams / 1 stream: $(ratio "${R[parley.many.rps]}" "${R[parley.one.rps]}")," \
        "$(verdict "$(ge "${R[parley.many.rps]}" "${R[parley.one.rps]}")")"
} | tee "$BENCH_OUT/w1-latest.md"
