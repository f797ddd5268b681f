#!/usr/bin/env bash
# bench/w2.sh — workloads W2 (message append) and W3 (idempotent replay).
#
#   bench/w2.sh            (make bench runs it after bench/w1.sh)
#
# Measures in RUNS rounds, after a warm-up, and prints a markdown table of
# the medians:
#   W2  wrk, 64 connections POSTing a user message (1 KiB content) across 64
#       conversations, every request with a new Idempotency-Key
#   W3  wrk, 64 connections POSTing the same message with the same key to one
#       conversation, again and again (sent once before: every answer is the
#       stored one, Idempotent-Replayed: true)
#   W1  the yardstick of W2: wrk + post.lua, 1 KiB stream appends over 64
#       streams on the same server (W2's target is a fraction of it)
#   nginx the yardstick of W3: the W3 requests against nginx answering
#       `return 204` (one worker)
#   the disk: 1 KiB write + fdatasync in a loop (bench/fsync_loop.c), for scale
# The five take turns in every round. Afterwards it checks what was stored:
# the messages the 64 conversations gained in each W2 run against wrk's 2xx
# count, and that the W3 conversation still holds one message.
#
# Everything listens on 127.0.0.1 only, keeps its data in a fresh directory
# under bench/out/ (which must not be tmpfs), and is stopped on exit.
#
# Knobs (environment): DURATION (s, default 10), WARMUP (s, 3), RUNS (3),
# CONNS (64), THREADS (2), CONVERSATIONS (64), REV (build and test that
# commit, taken with git archive, instead of the work tree), PARLEY (a binary
# to test instead of building one; default: the work tree, Release, in
# build-bench/), BENCH_OUT (default bench/out), KEEP=1 keeps the data
# directory and raw outputs, MAX_SECONDS (watchdog, default 600).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
CONVERSATIONS=${CONVERSATIONS:-64}
BENCH_OUT=${BENCH_OUT:-$HERE/out}
MAX_SECONDS=${MAX_SECONDS:-600}
KEEP=${KEEP:-0}

NAME=w2
TOOLS="wrk nginx curl cc cmake"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# -------------------------------------------------------------- helpers ----
# The message: the same body that message.lua sends, 1,024 bytes of content.
words="the quick brown fox jumps over the lazy dog "
text=""
while [ ${#text} -lt 1024 ]; do text="$text$words"; done
BODY="{\"role\":\"user\",\"content\":\"${text:0:1024}\"}"
[ ${#BODY} -eq 1052 ] || die "body is ${#BODY} bytes"
W3KEY="w3-the-same-key"

int() {   # 12345.6 -> 12,346
    awk -v v="$1" 'BEGIN {s = sprintf("%d", v + 0.5); o = "";
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o}'
}
median() { sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print 0}'; }
field() { sed -n "s/.*[ ,]$1=\([0-9.]*\).*/\1/p"; }   # KEY from "KEY=VALUE" pairs
jstr() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }  # a string member of a flat JSON object
jnum() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }      # a number member

# Results: R[workload.metric] = median; E[workload] = error count.
declare -A R E
BASE=""   # http://127.0.0.1:PORT
IDS=()    # the W2 conversations
W3ID=""   # the W3 conversation
FAIL=0    # a check that failed
W2CHECKS=() W3CHECKS=()   # rows for the report

create_conversation() {   # TITLE -> id
    local out code
    out=$(curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data "{\"title\":\"$1\"}" "$BASE/v1/conversations")
    code=${out##*$'\n'}
    [ "$code" = 201 ] || die "POST /v1/conversations answered $code: ${out%$'\n'*}"
    printf '%s\n' "${out%$'\n'*}" | jstr id
}

message_count() {   # ID -> message_count
    local out code
    out=$(curl -s -w '\n%{http_code}' "$BASE/v1/conversations/$1")
    code=${out##*$'\n'}
    [ "$code" = 200 ] || die "GET /v1/conversations/$1 answered $code"
    printf '%s\n' "${out%$'\n'*}" | jnum message_count
}

sum_counts() {   # the sum of message_count over IDS
    local id s=0
    for id in "${IDS[@]}"; do s=$((s + $(message_count "$id"))); done
    echo "$s"
}

# After wrk stops, the requests it left in flight are still being committed;
# wait until the sum stands still (3 equal readings 0.2 s apart).
settled_sum() {
    local last now same=0
    last=$(sum_counts)
    for _ in $(seq 50); do
        sleep 0.2
        now=$(sum_counts)
        if [ "$now" = "$last" ]; then
            same=$((same + 1)); [ "$same" -ge 2 ] && break
        else
            same=0
        fi
        last=$now
    done
    echo "$last"
}

wrk_run() {   # MODE TAG SECONDS OUTFILE [BASE]
    local ids
    if [ "$1" = w3 ]; then ids=$W3ID; else ids=$(IFS=,; echo "${IDS[*]}"); fi
    bg_wait timeout $(($3 + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${3}s" --timeout 10s --latency \
        -s "$HERE/message.lua" "${5:-$BASE}" -- "$1" "$2" "$ids" "$THREADS" >"$4"
    grep -q '^MSGRESULT' "$4" || die "no result from wrk ($4)"
}

# W2 run with its check: the conversations must have gained at least as many
# messages as wrk counted 2xx answers, and at most as many as it sent (wrk
# stops with up to one request per connection unanswered; the server commits
# those all the same).
TOTAL_2XX=0 TOTAL_GAINED=0 TOTAL_SENT=0
W2LINE=""
w2_run() {   # TAG SECONDS OUTFILE LABEL
    local before after line ok gained sent non2xx sockerr
    before=$(sum_counts)
    wrk_run w2 "$1" "$2" "$3"
    after=$(settled_sum)
    line=$(grep '^MSGRESULT' "$3")
    non2xx=$(echo "$line" | field non2xx)
    sockerr=$(echo "$line" | field socket_errors)
    ok=$(($(echo "$line" | field requests) - non2xx))
    sent=$(echo "$line" | field sent)
    gained=$((after - before))
    TOTAL_2XX=$((TOTAL_2XX + ok)) TOTAL_GAINED=$((TOTAL_GAINED + gained)) TOTAL_SENT=$((TOTAL_SENT + sent))
    local verdict=ok
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ] || [ "$gained" -lt "$ok" ] || [ "$gained" -gt "$sent" ]; then
        verdict=FAILED; FAIL=1
    fi
    W2CHECKS+=("| $4 | $(int "$ok") | $non2xx | $sockerr | $(int "$gained") | $((gained - ok)) | $(int "$sent") | $verdict |")
    W2LINE="$line gained=$gained $verdict"
}

# W1 on 64 streams of the same server, W2's yardstick (post.lua, as w1.sh).
w1_run() {   # SECONDS OUTFILE
    bg_wait timeout $(($1 + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${1}s" --timeout 10s --latency \
        -s "$HERE/post.lua" "$BASE" -- /v1/stream/w2-w1- "$CONVERSATIONS" "$THREADS" >"$2"
    grep -q '^W1RESULT' "$2" || die "no result from wrk ($2)"
}

w3_check() {   # OUTFILE LABEL: the conversation still holds its one message
    local n line non2xx sockerr verdict
    n=$(message_count "$W3ID")
    line=$(grep '^MSGRESULT' "$1")
    non2xx=$(echo "$line" | field non2xx)
    sockerr=$(echo "$line" | field socket_errors)
    if [ "$n" = 1 ]; then verdict="ok"; else verdict="FAILED"; FAIL=1; fi
    W3CHECKS+=("| $2 | $(int $(($(echo "$line" | field requests) - non2xx))) | $(int "$non2xx") | $sockerr | $n | $verdict |")
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------- start Parley ---
PORT=$(free_port)
"$PARLEY" serve --listen "127.0.0.1:$PORT" --data "$RUN_DIR/parley" --quiet \
    >"$RUN_DIR/parley.log" 2>&1 &
PARLEY_PID=$!
PIDS+=("$PARLEY_PID")
wait_http "$PORT" "$PARLEY_PID"
BASE="http://127.0.0.1:$PORT"
log "Parley on 127.0.0.1:$PORT"

for ((i = 0; i < CONVERSATIONS; i++)); do
    id=$(create_conversation "w2-$i")
    [ -n "$id" ] || die "no id for conversation w2-$i"
    IDS+=("$id")
done
for ((i = 0; i < CONVERSATIONS; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        "$BASE/v1/stream/w2-w1-$i")
    case "$code" in 200|201) ;; *) die "PUT /v1/stream/w2-w1-$i answered $code" ;; esac
done
W3ID=$(create_conversation "w3")
[ -n "$W3ID" ] || die "no id for conversation w3"
log "created $CONVERSATIONS W2 conversations, the W3 one and $CONVERSATIONS W1 streams"

NGINX_PORT=$(free_port)
start_nginx "$NGINX_PORT" "$RUN_DIR/nginx"
NGINX="http://127.0.0.1:$NGINX_PORT"
log "nginx (return 204) on 127.0.0.1:$NGINX_PORT"

# W3: the message is sent once (a new message), then once more by hand to
# see that the answer is the stored one, before wrk repeats it.
send_w3() {   # OUTFILE -> status line and headers in OUTFILE.h, body in OUTFILE
    curl -s -D "$1.h" -o "$1" -X POST -H 'Content-Type: application/json' \
        -H "Idempotency-Key: $W3KEY" --data "$BODY" "$BASE/v1/conversations/$W3ID/messages"
}
send_w3 "$RUN_DIR/w3-first"
head -n 1 "$RUN_DIR/w3-first.h" | grep -q ' 201' || die "first W3 request: $(head -n 1 "$RUN_DIR/w3-first.h")"
! grep -qi '^Idempotent-Replayed:' "$RUN_DIR/w3-first.h" || die "first W3 request was a replay"
send_w3 "$RUN_DIR/w3-again"
head -n 1 "$RUN_DIR/w3-again.h" | grep -q ' 201' || die "repeated W3 request: $(head -n 1 "$RUN_DIR/w3-again.h")"
grep -qi '^Idempotent-Replayed: *true' "$RUN_DIR/w3-again.h" || die "repeated W3 request was not a replay"
cmp -s "$RUN_DIR/w3-first" "$RUN_DIR/w3-again" || die "the replay's body differs from the first answer"
[ "$(message_count "$W3ID")" = 1 ] || die "W3 conversation does not hold exactly one message"

# --------------------------------------------------------------- warm-up ---
w2_run w2-warmup "$WARMUP" "$RUN_DIR/w2-warmup.txt" warm-up
log "warm-up W2: $W2LINE"
wrk_run w3 "$W3KEY" "$WARMUP" "$RUN_DIR/w3-warmup.txt"
w3_check "$RUN_DIR/w3-warmup.txt" warm-up
w1_run "$WARMUP" "$RUN_DIR/w1-warmup.txt"
wrk_run w3 "$W3KEY" "$WARMUP" "$RUN_DIR/nginx-warmup.txt" "$NGINX"
: >"$RUN_DIR/w2.res"
: >"$RUN_DIR/w3.res"
: >"$RUN_DIR/w1.res"
: >"$RUN_DIR/nginx.res"
: >"$RUN_DIR/disk.res"
E[w2]=0 E[w3]=0 E[w1]=0 E[nginx]=0
log "warmed up"

# ---------------------------------------------------------------- rounds ---
for ((run = 1; run <= RUNS; run++)); do
    log "round $run, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    w2_run "w2-r$run" "$DURATION" "$RUN_DIR/w2-$run.txt" "run $run"
    echo "$W2LINE" >>"$RUN_DIR/w2.res"
    E[w2]=$((${E[w2]} + $(echo "$W2LINE" | field non2xx) + $(echo "$W2LINE" | field socket_errors)))
    log "round $run W2: $W2LINE"

    wrk_run w3 "$W3KEY" "$DURATION" "$RUN_DIR/w3-$run.txt"
    line=$(grep '^MSGRESULT' "$RUN_DIR/w3-$run.txt")
    echo "$line" >>"$RUN_DIR/w3.res"
    E[w3]=$((${E[w3]} + $(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors)))
    w3_check "$RUN_DIR/w3-$run.txt" "run $run"
    log "round $run W3: $line"

    w1_run "$DURATION" "$RUN_DIR/w1-$run.txt"
    line=$(grep '^W1RESULT' "$RUN_DIR/w1-$run.txt")
    echo "$line" >>"$RUN_DIR/w1.res"
    E[w1]=$((${E[w1]} + $(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors)))
    log "round $run W1 ($CONVERSATIONS streams): $line"

    wrk_run w3 "$W3KEY" "$DURATION" "$RUN_DIR/nginx-$run.txt" "$NGINX"
    line=$(grep '^MSGRESULT' "$RUN_DIR/nginx-$run.txt")
    echo "$line" >>"$RUN_DIR/nginx.res"
    E[nginx]=$((${E[nginx]} + $(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors)))
    log "round $run nginx (W3 requests): $line"

    bg_wait "$FSYNC_LOOP" "$RUN_DIR/fsync.dat" "$DURATION" 1024 >"$RUN_DIR/disk-$run.txt"
    line=$(cat "$RUN_DIR/disk-$run.txt")
    echo "$line" >>"$RUN_DIR/disk.res"
    log "round $run disk: $line"
done

# What the W3 answers are: a short probe run, not measured, with wrk counting
# the answers by status in Lua (which slows it down).
MSG_STATUSES=1 wrk_run w3 "$W3KEY" 2 "$RUN_DIR/w3-probe.txt"
W3STATUS=$(sed -n 's/^MSGSTATUS //p' "$RUN_DIR/w3-probe.txt")
w3_check "$RUN_DIR/w3-probe.txt" "status probe (2 s)"
log "W3 probe: $W3STATUS"

# The whole server: every message in the 64 conversations came from a W2 run.
final=$(sum_counts)
if [ "$final" != "$TOTAL_GAINED" ]; then
    FAIL=1
    log "the conversations hold $final messages, the runs gained $TOTAL_GAINED"
fi
[ -s "$RUN_DIR/parley.log" ] && log "Parley's log: $(tail -n 5 "$RUN_DIR/parley.log")"
kill -0 "$PARLEY_PID" 2>/dev/null || die "Parley exited during the run (see $RUN_DIR/parley.log)"

for w in w2 w3; do
    for m in rps ok_rps p50_us p99_us; do
        R[$w.$m]=$(field "$m" <"$RUN_DIR/$w.res" | median)
    done
    R[$w.max]=$(field max_us <"$RUN_DIR/$w.res" | sort -g | tail -n 1)
    R[$w.runs]=$(field ok_rps <"$RUN_DIR/$w.res" | awk '{printf "%s%d", (NR > 1 ? "," : ""), $1 + 0.5}')
done
for m in ops_per_s p50_us p99_us; do
    R[disk.$m]=$(field "$m" <"$RUN_DIR/disk.res" | median)
done
for m in rps p50_us p99_us; do
    R[w1.$m]=$(field "$m" <"$RUN_DIR/w1.res" | median)
done
for m in ok_rps rps p50_us p99_us; do
    R[nginx.$m]=$(field "$m" <"$RUN_DIR/nginx.res" | median)
done

# -------------------------------------------------------------- report -----
ints() { local v o=""; for v in ${1//,/ }; do o="$o${o:+, }$(int "$v")"; done; echo "$o"; }
ms() { awk -v v="$1" 'BEGIN {printf "%.2f ms", v / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "n/a"}'; }
errnote() { [ "${E[$1]:-0}" = 0 ] || printf ' (%s errors)' "$(int "${E[$1]}")"; }

commit=$COMMIT
if [ -z "$commit" ]; then
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit (with uncommitted changes)"
    fi
fi

w2w1=$(awk -v a="${R[w2.ok_rps]}" -v b="${R[w1.rps]}" 'BEGIN {print (b > 0) ? a / b : 0}')
w3ng=$(awk -v a="${R[w3.ok_rps]}" -v b="${R[nginx.ok_rps]}" 'BEGIN {print (b > 0) ? a / b : 0}')
met() {   # A >= B or A <= B (numbers) -> met / **not met**
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        r = (op == ">=") ? (a + 0 >= b + 0) : (a + 0 <= b + 0); print r ? "met" : "**not met**" }'
}
{
    for m in ok_rps rps p50_us p99_us max; do echo "w2.w2.$m=${R[w2.$m]}"; echo "w2.w3.$m=${R[w3.$m]}"; done
    for m in rps p50_us p99_us; do echo "w2.w1.$m=${R[w1.$m]}"; done
    for m in ok_rps p50_us p99_us; do echo "w2.nginx.$m=${R[nginx.$m]}"; done
    echo "w2.disk.ops_per_s=${R[disk.ops_per_s]}"
    echo "w2.errors=$((${E[w2]} + ${E[w3]} + ${E[w1]} + ${E[nginx]}))"
    echo "w2.checks=$FAIL"
} >"$BENCH_OUT/w2-summary.txt"

{
    echo "### W2 message append, W3 idempotent replay — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo
    echo "$CONNS connections, $THREADS load-generator threads, a user message of 1 KiB content" \
        "(1,052-byte body) with an Idempotency-Key; W2 across $CONVERSATIONS conversations, a new" \
        "key per request; W3 one conversation, one key, the same request again and again." \
        "W2's yardstick is W1 on $CONVERSATIONS streams of the same server (1 KiB stream appends," \
        "post.lua), W3's is nginx answering \`return 204\` to the same requests." \
        "Median of $RUNS runs of ${DURATION} s after a ${WARMUP} s warm-up, W2, W3, W1, nginx and" \
        "the disk loop taking turns in each round."
    echo "Machine: $(nproc) cores, $(uname -sr), data on $fstype;" \
        "load generator on the same machine; load average $LOAD_START at the start," \
        "$(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo
    echo "| workload | Parley 2xx/s | all answers/s | p50 | p99 | worst max | runs (2xx/s) | 2xx/disk | disk fdatasync/s | target |"
    echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"
    echo "| W2, $CONVERSATIONS conversations | $(int "${R[w2.ok_rps]}") | $(int "${R[w2.rps]}")$(errnote w2) | $(ms "${R[w2.p50_us]}") | $(ms "${R[w2.p99_us]}") | $(ms "${R[w2.max]}") | $(ints "${R[w2.runs]}") | $(ratio "${R[w2.ok_rps]}" "${R[disk.ops_per_s]}") | $(int "${R[disk.ops_per_s]}") |" \
        "≥ 0.5× W1 ($(ratio "${R[w2.ok_rps]}" "${R[w1.rps]}")): $(met "$w2w1" ">=" 0.5); p99 ≤ 10 ms: $(met "${R[w2.p99_us]}" "<=" 10000) |"
    echo "| W3, 1 key | $(int "${R[w3.ok_rps]}") | $(int "${R[w3.rps]}")$(errnote w3) | $(ms "${R[w3.p50_us]}") | $(ms "${R[w3.p99_us]}") | $(ms "${R[w3.max]}") | $(ints "${R[w3.runs]}") | $(ratio "${R[w3.ok_rps]}" "${R[disk.ops_per_s]}") | $(int "${R[disk.ops_per_s]}") |" \
        "≥ 0.9× nginx ($(ratio "${R[w3.ok_rps]}" "${R[nginx.ok_rps]}")): $(met "$w3ng" ">=" 0.9) |"
    echo
    echo "The yardsticks, in the same rounds:"
    echo
    echo "| | req/s | p50 | p99 | ratio | target |"
    echo "|---|---:|---:|---:|---:|---|"
    echo "| W1, $CONVERSATIONS streams (Parley) | $(int "${R[w1.rps]}")$(errnote w1) | $(ms "${R[w1.p50_us]}") | $(ms "${R[w1.p99_us]}") | W2/W1 $(ratio "${R[w2.ok_rps]}" "${R[w1.rps]}") | W2 ≥ 0.5× W1: $(met "$w2w1" ">=" 0.5); W2 p99 ≤ 10 ms: $(met "${R[w2.p99_us]}" "<=" 10000) |"
    echo "| nginx \`return 204\`, W3's requests | $(int "${R[nginx.ok_rps]}")$(errnote nginx) | $(ms "${R[nginx.p50_us]}") | $(ms "${R[nginx.p99_us]}") | W3/nginx $(ratio "${R[w3.ok_rps]}" "${R[nginx.ok_rps]}") | W3 ≥ 0.9× nginx: $(met "$w3ng" ">=" 0.9) |"
    echo
    echo "2xx/s counts the answers below 400 (wrk counts a status ≥ 400 as an error); the" \
        "targets are taken against it. p50/p99 are wrk's, over every answer, errors included."
    echo
    echo "Disk, 1 KiB write + fdatasync one at a time: $(int "${R[disk.ops_per_s]}")/s," \
        "p50 $(ms "${R[disk.p50_us]}"), p99 $(ms "${R[disk.p99_us]}") (medians of the rounds)."
    echo
    echo "What was stored. W2: the messages the $CONVERSATIONS conversations gained (sum of" \
        "message_count after the run minus before) against wrk's 2xx answers; wrk stops with up" \
        "to one request per connection unanswered, which the server still commits, so the" \
        "check is 2xx ≤ gained ≤ sent."
    echo
    echo "| W2 | 2xx (wrk) | non-2xx | socket errors | messages gained | gained − 2xx | sent | check |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${W2CHECKS[@]}"
    echo "| all | $(int "$TOTAL_2XX") | | | $(int "$TOTAL_GAINED") | $((TOTAL_GAINED - TOTAL_2XX)) | $(int "$TOTAL_SENT") | the conversations hold $(int "$final") |"
    echo
    echo "W3: the conversation must still hold the one message sent before the runs." \
        "Answers by status in the probe run: $W3STATUS (replayed = answers with" \
        "Idempotent-Replayed: true)."
    echo
    echo "| W3 | 2xx (wrk) | non-2xx | socket errors | message_count | check |"
    echo "|---|---:|---:|---:|---:|---|"
    printf '%s\n' "${W3CHECKS[@]}"
    echo
    if [ "$FAIL" = 0 ]; then echo "All checks passed."; else echo "**A check FAILED** (see above)."; fi
    if [ "${E[w2]}" != 0 ] || [ "${E[w3]}" != 0 ]; then
        echo "Requests answered with an error or lost on the socket: W2 $(int "${E[w2]}")," \
            "W3 $(int "${E[w3]}")" \
            "(measured runs)."
    fi
} | tee "$BENCH_OUT/w2-latest.md"

[ "$FAIL" = 0 ] || die "a check failed"
