#!/usr/bin/env bash
# bench/pg.sh — W1 and W2 on PostgreSQL, side by side with SQLite and with
# PostgreSQL's own ceiling, in one run.
#
#   bench/pg.sh                      on the work tree (Release build in build-bench/)
#   REV=HEAD bench/pg.sh             exactly one commit (what make bench does)
#   DURATION=2 WARMUP=1 RUNS=1 bench/pg.sh   a smoke run
#
# One private PostgreSQL 15 server (tests/lib/pg-start: fsync and
# synchronous_commit on, its cluster in the run directory on a real disk),
# stopped and removed at the end (tests/lib/pg-stop). On it, the peers:
#
#   sqlite    one Parley node on SQLite (--data), the default backend
#   pg1       one Parley node on PostgreSQL (database p1)
#   pg2       two Parley nodes on one PostgreSQL database (p2), the load
#             split over both: two wrk processes, each with half the
#             connections, one per node, at the same time
#   pgbench   PostgreSQL alone: pgbench running, as a custom script, the
#             SQL one request makes the writer run (database pgb, the schema
#             and rows made by a Parley node, then that node stopped), with
#             the same number of clients as wrk has connections
#
# and three workloads: W1 on 1 stream and on 64 streams (post.lua: 1 KiB
# JSON stream appends), W2 on 64 conversations (message.lua: a user message
# of 1 KiB content with a new Idempotency-Key). In each of RUNS rounds every
# peer gets one run of DURATION seconds per workload, the peers taking turns
# (only one is under load at a time). The table shows medians; ratios are
# against pgbench (the same transaction with nothing else around it),
# against SQLite, and 2 nodes against 1.
#
# Knobs: DURATION (10), WARMUP (3), RUNS (3), CONNS (64), THREADS (2),
# STREAMS (64), CONVERSATIONS (64), REV, PARLEY, BENCH_OUT, KEEP,
# MAX_SECONDS (1200), PG_BIN (/usr/lib/postgresql/15/bin), PGBENCH_CONNECT
# (3: seconds added to each pgbench run for its 64 clients to connect).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
STREAMS=${STREAMS:-64}
CONVERSATIONS=${CONVERSATIONS:-64}
BENCH_OUT=${BENCH_OUT:-$HERE/out}
MAX_SECONDS=${MAX_SECONDS:-1200}
KEEP=${KEEP:-0}
PGBENCH_CONNECT=${PGBENCH_CONNECT:-3}
export PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

NAME=pg
TOOLS="wrk curl cc cmake pgbench psql python3 runuser"
source "$HERE/lib.sh"

[ $((CONNS % 2)) = 0 ] || die "CONNS must be even (the two-node runs split it in halves)"
HALF_CONNS=$((CONNS / 2))
HALF_THREADS=$(((THREADS + 1) / 2))

jstr() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; } # a string member of a flat JSON object

# ------------------------------------------------------------ PostgreSQL ---
# The server's cluster lives in the run directory (a real disk, removed at
# the end); the postgres user must be able to reach it.
chmod 0755 "$RUN_DIR"
PG_DIR=""
NODES=() # the Parley nodes, stopped before the database
pg_cleanup() {
    local rc=$? pid
    set +e # (exit RC) below must not end the trap before cleanup runs
    for pid in "${NODES[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${NODES[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -z "$PG_DIR" ] || "$ROOT/tests/lib/pg-stop" "$PG_DIR" || true
    (exit "$rc")
    cleanup
}
trap pg_cleanup EXIT

out=$(TMPDIR=$RUN_DIR "$ROOT/tests/lib/pg-start") || die "PostgreSQL did not start"
PG_DIR=$(echo "$out" | sed -n 1p)
PG_PORT=$(sed -n 's/^port = //p' "$PG_DIR/data/postgresql.conf" | tail -n 1)
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres)
for db in p1 p2 pgb; do "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db" >/dev/null; done
store() { echo "postgres://postgres@/$1?host=$PG_DIR&port=$PG_PORT"; }
log "PostgreSQL $("${PSQL[@]}" -d postgres -tAc 'SHOW server_version') on port $PG_PORT" \
    "(fsync $("${PSQL[@]}" -d postgres -tAc 'SHOW fsync'), synchronous_commit $("${PSQL[@]}" -d postgres -tAc 'SHOW synchronous_commit'))"

# ---------------------------------------------------------------- nodes ----
start_node() { # LABEL STORE-ARGS... -> sets NODE_PORT
    local label=$1 pid
    shift
    NODE_PORT=$(free_port)
    "$PARLEY" serve --listen "127.0.0.1:$NODE_PORT" "$@" --quiet >"$RUN_DIR/$label.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    NODES+=("$pid")
    wait_http "$NODE_PORT" "$pid"
    log "$label: Parley on 127.0.0.1:$NODE_PORT"
}

# The streams and conversations of both workloads, through the node at BASE:
# w1-one-0, w1-many-0..STREAMS-1, CONVERSATIONS conversations (ids in IDS).
setup_data() { # BASE -> IDS (comma-separated)
    local base=$1 i code out id
    for path in w1-one-0 $(for ((i = 0; i < STREAMS; i++)); do echo "w1-many-$i"; done); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
            "$base/v1/stream/$path")
        case "$code" in 200|201) ;; *) die "PUT /v1/stream/$path answered $code" ;; esac
    done
    IDS=""
    for ((i = 0; i < CONVERSATIONS; i++)); do
        out=$(curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
            --data "{\"title\":\"pg-$i\"}" "$base/v1/conversations")
        [ "${out##*$'\n'}" = 201 ] || die "POST /v1/conversations answered ${out##*$'\n'}"
        id=$(printf '%s\n' "${out%$'\n'*}" | jstr id)
        [ -n "$id" ] || die "no conversation id in ${out%$'\n'*}"
        IDS="$IDS${IDS:+,}$id"
    done
}

start_node sqlite --data "$RUN_DIR/sqlite"
SQLITE_BASE="http://127.0.0.1:$NODE_PORT"
setup_data "$SQLITE_BASE"
SQLITE_IDS=$IDS

start_node pg1 --store "$(store p1)"
PG1_BASE="http://127.0.0.1:$NODE_PORT"
setup_data "$PG1_BASE"
PG1_IDS=$IDS

start_node pg2a --store "$(store p2)"
PG2A_BASE="http://127.0.0.1:$NODE_PORT"
start_node pg2b --store "$(store p2)"
PG2B_BASE="http://127.0.0.1:$NODE_PORT"
setup_data "$PG2A_BASE"
PG2_IDS=$IDS

# pgbench's database: the schema and rows a Parley node makes (the same
# tables, indexes and counter function), then the node stops.
start_node pgb --store "$(store pgb)"
setup_data "http://127.0.0.1:$NODE_PORT"
kill -TERM "${NODES[-1]}"
wait "${NODES[-1]}" 2>/dev/null || true
"${PSQL[@]}" -d pgb >/dev/null <<'SQL'
CREATE TABLE bench_conv AS
SELECT row_number() OVER (ORDER BY c.id) AS n, c.id AS conv_id, s.id AS conv_stream,
       (SELECT id FROM streams WHERE path = '_parley/feed/u/@local') AS feed_user,
       (SELECT id FROM streams WHERE path = '_parley/feed/all') AS feed_all
FROM conversations c JOIN streams s ON s.path = '_parley/conv/' || c.id;
CREATE UNIQUE INDEX ON bench_conv (n);
SQL
[ "$("${PSQL[@]}" -d pgb -tAc 'SELECT count(*) FROM bench_conv WHERE feed_user IS NOT NULL AND feed_all IS NOT NULL')" = "$CONVERSATIONS" ] ||
    die "pgbench's conversations are not as expected"
ONE_ID=$("${PSQL[@]}" -d pgb -tAc "SELECT id FROM streams WHERE path = 'w1-one-0'")
read -r MANY_LO MANY_HI MANY_N < <("${PSQL[@]}" -d pgb -tA -F ' ' -c \
    "SELECT min(id), max(id), count(*) FROM streams WHERE path LIKE 'w1-many-%'")
[ "$MANY_N" = "$STREAMS" ] && [ $((MANY_HI - MANY_LO + 1)) = "$STREAMS" ] ||
    die "the W1 streams' ids are not one range ($MANY_LO..$MANY_HI, $MANY_N)"

# ------------------------------------------------------ pgbench scripts ----
# What the writer runs for one request (as PostgreSQL's statement log shows
# it), with literal payloads of the same sizes. Parley runs these inside a
# batch transaction with a savepoint per request and one pg_notify per batch;
# pgbench runs each request as its own transaction (BEGIN ... COMMIT), and
# PostgreSQL's WAL flush is shared by the commits waiting for it.
hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }
filler() { # N -> N bytes of text
    local words="the quick brown fox jumps over the lazy dog " t=""
    while [ ${#t} -lt "$1" ]; do t="$t$words"; done
    printf '%s' "${t:0:$1}"
}
W1_HEAD='{"type":"message","role":"user","author":"bench","text":"'
W1_DATA=$(hex "$W1_HEAD$(filler $((1024 - ${#W1_HEAD} - 2)))\"}") # post.lua's body
[ ${#W1_DATA} = 2048 ] || die "W1 payload is $((${#W1_DATA} / 2)) bytes"
MSG_DATA=$(hex "$(filler 1240)")  # the stored message: the 1 KiB content + its fields
FEED_DATA=$(hex "$(filler 280)")  # one change-feed event
RESP_DATA=$(hex "$(filler 1260)") # the stored 201 answer
FINGERPRINT=$(filler 64)

cat >"$RUN_DIR/w1.sql" <<SQL
\set s random(:lo, :hi)
BEGIN;
SELECT tail FROM streams WHERE id = :s FOR UPDATE;
UPDATE streams SET tail = tail + 1, touched_ms = 1 WHERE id = :s AND NOT closed AND NOT deleted RETURNING tail AS t \gset
INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) VALUES (:s, :t, :t - 1, :t, '\\x$W1_DATA'::bytea);
COMMIT;
SQL
cat >"$RUN_DIR/w2.sql" <<SQL
\set n random(1, $CONVERSATIONS)
\set k random(1, 4000000000000000)
SELECT conv_id AS cid, conv_stream AS cs, feed_user AS fu, feed_all AS fa FROM bench_conv WHERE n = :n \gset
BEGIN;
SELECT fingerprint FROM idempotency WHERE owner = '@local' AND key = 'pgb-' || :client_id || '-' || :k FOR UPDATE;
SELECT version FROM conversations WHERE id = :cid FOR UPDATE;
SELECT tail FROM streams WHERE id = :cs FOR UPDATE;
UPDATE streams SET tail = tail + 1, touched_ms = 1 WHERE id = :cs AND NOT closed AND NOT deleted RETURNING tail AS t \gset
INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) VALUES (:cs, :t, :t - 1, :t, '\\x$MSG_DATA'::bytea);
UPDATE conversations SET message_count = message_count + 1, version = version + 1, updated_ms = 1, last_message_ms = 1, activity = parley_next('conversation_activity') WHERE id = :cid AND NOT deleted RETURNING message_count;
SELECT tail FROM streams WHERE id = :fu FOR UPDATE;
UPDATE streams SET tail = tail + 1, touched_ms = 1 WHERE id = :fu AND NOT closed AND NOT deleted RETURNING tail AS t \gset
INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) VALUES (:fu, :t, :t - 1, :t, '\\x$FEED_DATA'::bytea);
SELECT tail FROM streams WHERE id = :fa FOR UPDATE;
UPDATE streams SET tail = tail + 1, touched_ms = 1 WHERE id = :fa AND NOT closed AND NOT deleted RETURNING tail AS t \gset
INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) VALUES (:fa, :t, :t - 1, :t, '\\x$FEED_DATA'::bytea);
INSERT INTO idempotency AS i (owner, key, fingerprint, created_ms, response) VALUES ('@local', 'pgb-' || :client_id || '-' || :k, '$FINGERPRINT', 1, '\\x$RESP_DATA'::bytea) ON CONFLICT (owner, key) DO NOTHING RETURNING 1;
COMMIT;
SQL

# ----------------------------------------------------------------- runs ----
# Each run appends one line to OUT: " rps= p50_us= p99_us= errors=".
TAGN=0
wrk_cmd() { # KIND BASE SECS CONNS THREADS IDS -> WRK (the command)
    local kind=$1 base=$2 secs=$3 c=$4 t=$5 ids=$6
    WRK=(wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s --latency)
    TAGN=$((TAGN + 1)) # W2: a tag of its own for each wrk process
    case "$kind" in
    w1one) WRK+=(-s "$HERE/post.lua" "$base" -- /v1/stream/w1-one- 1 "$t") ;;
    w1many) WRK+=(-s "$HERE/post.lua" "$base" -- /v1/stream/w1-many- "$STREAMS" "$t") ;;
    w2) WRK+=(-s "$HERE/message.lua" "$base" -- w2 "pg-$$-$TAGN" "$ids" "$t") ;;
    esac
}
result_of() { # RAW -> "rps p50 p99 errors" (W1RESULT or MSGRESULT; W2 counts 2xx)
    local line rps
    line=$(grep -E '^(W1RESULT|MSGRESULT)' "$1") || die "no result from wrk ($1)"
    if [[ $line == MSGRESULT* ]]; then rps=$(echo "$line" | field ok_rps); else rps=$(echo "$line" | field rps); fi
    echo "$rps $(echo "$line" | field p50_us) $(echo "$line" | field p99_us)" \
        "$(($(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors)))"
}

run_parley() { # PEER KIND SECS OUT
    local peer=$1 kind=$2 secs=$3 out=$4 a b pa pb rps p50 p99 err
    case "$peer" in
    sqlite|pg1)
        if [ "$peer" = sqlite ]; then
            wrk_cmd "$kind" "$SQLITE_BASE" "$secs" "$CONNS" "$THREADS" "$SQLITE_IDS"
        else
            wrk_cmd "$kind" "$PG1_BASE" "$secs" "$CONNS" "$THREADS" "$PG1_IDS"
        fi
        bg_wait timeout $((secs + 30)) "${WRK[@]}" >"$RUN_DIR/raw"
        read -r rps p50 p99 err < <(result_of "$RUN_DIR/raw") ;;
    pg2)
        # Both nodes at once, half the connections each.
        wrk_cmd "$kind" "$PG2A_BASE" "$secs" "$HALF_CONNS" "$HALF_THREADS" "$PG2_IDS"
        timeout $((secs + 30)) "${WRK[@]}" >"$RUN_DIR/raw.a" &
        pa=$!
        wrk_cmd "$kind" "$PG2B_BASE" "$secs" "$HALF_CONNS" "$HALF_THREADS" "$PG2_IDS"
        timeout $((secs + 30)) "${WRK[@]}" >"$RUN_DIR/raw.b" &
        pb=$!
        CHILD="$pa $pb"
        wait "$pa" || die "wrk against node A failed"
        wait "$pb" || die "wrk against node B failed"
        CHILD=""
        read -r -a a < <(result_of "$RUN_DIR/raw.a")
        read -r -a b < <(result_of "$RUN_DIR/raw.b")
        rps=$(awk -v x="${a[0]}" -v y="${b[0]}" 'BEGIN {print x + y}')
        p50=$(awk -v x="${a[1]}" -v y="${b[1]}" 'BEGIN {print (x + y) / 2}')
        p99=$(awk -v x="${a[2]}" -v y="${b[2]}" 'BEGIN {print (x > y) ? x : y}')
        err=$((a[3] + b[3]))
        [ "$out" = "$RUN_DIR/warmup.res" ] || echo "$kind ${a[0]} ${b[0]}" >>"$RUN_DIR/pg2-split.txt" ;;
    esac
    echo " rps=$rps p50_us=$p50 p99_us=$p99 errors=$err" >>"$out"
}

run_pgbench() { # KIND SECS OUT
    local kind=$1 secs=$2 out=$3 script vars=() raw="$RUN_DIR/pgbench.out" rps lat
    case "$kind" in
    w1one) script=w1.sql; vars=(-D "lo=$ONE_ID" -D "hi=$ONE_ID") ;;
    w1many) script=w1.sql; vars=(-D "lo=$MANY_LO" -D "hi=$MANY_HI") ;;
    w2) script=w2.sql ;;
    esac
    rm -f "$RUN_DIR"/pgblog*
    # -T adds PGBENCH_CONNECT seconds: pgbench's tps leaves out the time its
    # clients took to connect (each a new backend: seconds on a loaded
    # machine), and the run must still hold about SECS of transactions.
    bg_wait timeout $((secs + PGBENCH_CONNECT + 60)) pgbench -n -M prepared -c "$CONNS" -j "$THREADS" \
        -T $((secs + PGBENCH_CONNECT)) \
        -f "$RUN_DIR/$script" "${vars[@]}" -l --log-prefix="$RUN_DIR/pgblog" \
        -h "$PG_DIR" -p "$PG_PORT" -U postgres pgb >"$raw" 2>"$RUN_DIR/pgbench.err"
    rps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$raw")
    if [ -z "$rps" ]; then # a run too short for 64 connections to start sends nothing
        grep -q '^number of transactions actually processed: 0$' "$raw" ||
            die "no tps from pgbench: $(tail -n 5 "$raw" "$RUN_DIR/pgbench.err")"
        rps=0
    fi
    # Per-transaction latencies (µs, the third field of pgbench's log).
    lat=$(cat "$RUN_DIR"/pgblog* | awk '{print $3}' | sort -n |
        awk '{v[NR] = $1} END {
            a = int(NR * 0.5); b = int(NR * 0.99); if (a < 1) a = 1; if (b < 1) b = 1
            if (NR) printf "%d %d", v[a], v[b]; else print "0 0"}')
    rm -f "$RUN_DIR"/pgblog*
    local failed
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$raw")
    echo " rps=$rps p50_us=${lat% *} p99_us=${lat#* } errors=${failed:-0}" >>"$out"
}

KINDS="w1one w1many w2"
PEERS="sqlite pg1 pg2 pgbench"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
run() { # PEER KIND SECS OUT
    if [ "$1" = pgbench ]; then run_pgbench "$2" "$3" "$4"; else run_parley "$@"; fi
}

log "warm-up: ${WARMUP} s per peer and workload"
for kind in $KINDS; do
    for peer in $PEERS; do run "$peer" "$kind" "$WARMUP" "$RUN_DIR/warmup.res"; done
done
: >"$RUN_DIR/pg2-split.txt"
for ((r = 1; r <= RUNS; r++)); do
    log "round $r of $RUNS"
    for kind in $KINDS; do
        for peer in $PEERS; do run "$peer" "$kind" "$DURATION" "$RUN_DIR/$peer.$kind.res"; done
    done
done

# What PostgreSQL itself counted in each database: deadlocks it broke (each
# costs deadlock_timeout, 1 s, and a request run again) and rollbacks.
declare -A DB
for db in p1 p2 pgb; do
    read -r dl rb < <("${PSQL[@]}" -d postgres -tA -F ' ' -c \
        "SELECT deadlocks, xact_rollback FROM pg_stat_database WHERE datname = '$db'")
    DB[$db.deadlocks]=$dl
    DB[$db.rollbacks]=$rb
done

# ---------------------------------------------------------------- report ---
declare -A R
for kind in $KINDS; do
    for peer in $PEERS; do
        f="$RUN_DIR/$peer.$kind.res"
        for m in rps p50_us p99_us; do R[$peer.$kind.$m]=$(field "$m" <"$f" | median); done
        R[$peer.$kind.errors]=$(field errors <"$f" | awk '{s += $1} END {print s + 0}')
        R[$peer.$kind.runs]=$(field rps <"$f" | awk '{printf "%s%d", (NR > 1 ? ", " : ""), $1 + 0.5}')
    done
done
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print 0}'; }
errnote() { [ "${R[$1.errors]}" = 0 ] || printf ' (%s errors)' "$(int "${R[$1.errors]}")"; }

{
    for kind in $KINDS; do
        for peer in $PEERS; do
            for m in rps p50_us p99_us errors; do echo "pg.$kind.$peer.$m=${R[$peer.$kind.$m]}"; done
        done
        echo "pg.$kind.ratio.pg1_pgbench=$(div "${R[pg1.$kind.rps]}" "${R[pgbench.$kind.rps]}")"
        echo "pg.$kind.ratio.pg2_pgbench=$(div "${R[pg2.$kind.rps]}" "${R[pgbench.$kind.rps]}")"
        echo "pg.$kind.ratio.pg1_sqlite=$(div "${R[pg1.$kind.rps]}" "${R[sqlite.$kind.rps]}")"
        echo "pg.$kind.ratio.pg2_pg1=$(div "${R[pg2.$kind.rps]}" "${R[pg1.$kind.rps]}")"
    done
    for db in p1 p2 pgb; do echo "pg.db.$db.deadlocks=${DB[$db.deadlocks]}"; done
} >"$BENCH_OUT/pg-summary.txt"

label() {
    case "$1" in
    w1one) echo "W1, 1 stream" ;;
    w1many) echo "W1, $STREAMS streams" ;;
    w2) echo "W2, $CONVERSATIONS conversations" ;;
    esac
}
{
    echo "### PostgreSQL: W1 and W2 — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(commit_label)"
    echo
    echo "PostgreSQL $("${PSQL[@]}" -d postgres -tAc 'SHOW server_version'), a private server on the" \
        "same machine and disk (fsync on, synchronous_commit on, shared_buffers 64MB, everything" \
        "else default). $CONNS connections, $THREADS load-generator threads. **SQLite**: one Parley" \
        "node, the default backend. **PG, 1 node**: one Parley node on PostgreSQL. **PG, 2 nodes**:" \
        "two Parley nodes on one database, the load split over both (two wrk processes at once," \
        "$HALF_CONNS connections each, one per node; req/s is their sum, p50 the mean of the two," \
        "p99 the larger). **pgbench**: PostgreSQL alone running the SQL the writer runs for one" \
        "request as a custom script, one transaction per request, $CONNS clients" \
        "(\`bench/pg.sh\` writes the scripts; README.md says what is in them). W2 counts 2xx" \
        "answers. Median of $RUNS runs of ${DURATION} s after a ${WARMUP} s warm-up, the peers" \
        "taking turns in each round."
    echo "$(machine_line "$LOAD_START")"
    echo
    echo "| workload | peer | req/s | p50 | p99 | runs (req/s) | ÷ pgbench | ÷ SQLite | 2 nodes ÷ 1 |"
    echo "|---|---|---:|---:|---:|---|---:|---:|---:|"
    for kind in $KINDS; do
        for peer in $PEERS; do
            case "$peer" in
            sqlite) name="Parley, SQLite" ;;
            pg1) name="Parley, PG, 1 node" ;;
            pg2) name="Parley, PG, 2 nodes" ;;
            pgbench) name="pgbench, same SQL" ;;
            esac
            vs_pgb="" vs_sql="" two=""
            case "$peer" in
            sqlite) vs_pgb="$(div "${R[sqlite.$kind.rps]}" "${R[pgbench.$kind.rps]}")×" ;;
            pg1|pg2)
                vs_pgb="$(div "${R[$peer.$kind.rps]}" "${R[pgbench.$kind.rps]}")×"
                vs_sql="$(div "${R[$peer.$kind.rps]}" "${R[sqlite.$kind.rps]}")×" ;;
            esac
            [ "$peer" != pg2 ] || two="$(div "${R[pg2.$kind.rps]}" "${R[pg1.$kind.rps]}")×"
            echo "| $(label "$kind") | $name | $(int "${R[$peer.$kind.rps]}")$(errnote "$peer.$kind") |" \
                "$(ms "${R[$peer.$kind.p50_us]}") | $(ms "${R[$peer.$kind.p99_us]}") | ${R[$peer.$kind.runs]} |" \
                "$vs_pgb | $vs_sql | $two |"
        done
    done
    echo
    echo "Two nodes, each node's share in the measured runs (req/s, node A + node B):" \
        "$(for kind in $KINDS; do printf '%s: ' "$(label "$kind")"
            awk -v k="$kind" '$1 == k {printf "%s%d + %d", (n++ ? ", " : ""), $2 + 0.5, $3 + 0.5}' "$RUN_DIR/pg2-split.txt"
            printf '; '; done | sed 's/; $//')."
    echo "PostgreSQL's own counts over the whole run (warm-up included), pg_stat_database:" \
        "1 node (p1) ${DB[p1.deadlocks]} deadlocks, ${DB[p1.rollbacks]} rollbacks;" \
        "2 nodes (p2) ${DB[p2.deadlocks]} deadlocks, ${DB[p2.rollbacks]} rollbacks;" \
        "pgbench (pgb) ${DB[pgb.deadlocks]} deadlocks, ${DB[pgb.rollbacks]} rollbacks."
    echo "pgbench's tps leaves out the time its $CONNS clients took to connect (each run lasts" \
        "$((DURATION + PGBENCH_CONNECT)) s for that); its p50/p99 are over every transaction of the run (its per-transaction log);" \
        "wrk's are from the request to the end of the response."
} | tee "$BENCH_OUT/pg-latest.md"
