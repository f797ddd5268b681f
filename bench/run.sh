#!/usr/bin/env bash
# bench/run.sh — every workload, W1 to W7, with its peers, and RESULTS.md.
#
#   make bench             (scripts/setup, then this)
#   bench/run.sh           the same without the setup step
#   QUICK=1 bench/run.sh   a smoke run at small sizes (a few minutes); its
#                          report goes to bench/out/RESULTS-quick.md and
#                          RESULTS.md is left alone
#
# Builds one committed revision (REV, default HEAD: what the work tree holds
# but has not committed is not measured) once, runs w1.sh (W1), w2.sh (W2,
# W3), w4.sh (W4), w5.sh (W5, W6), w7.sh (W7) and pg.sh (W1 and W2 on
# PostgreSQL, against pgbench and SQLite) on it one after the other
# (a script that fails is reported as such and the others still run), and
# writes RESULTS.md: date, commit and machine, the targets of
# PERFORMANCE.md with what was measured (met / not met), the detail tables
# of every script, and the History section of the previous RESULTS.md,
# kept as it was.
#
# Knobs (environment): REV (HEAD), QUICK (0), ONLY (a list of scripts, e.g.
# "w1 w4"), RESULTS (where the report goes), MAX_SECONDS_ALL (the watchdog
# of the whole run, 2700), and every knob of the scripts (DURATION, RUNS,
# W4_MIB, W5_SUBSCRIBERS, W6_SUBSCRIBERS, W7_MIB, ...), passed through.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export BENCH_OUT=${BENCH_OUT:-$HERE/out}
mkdir -p "$BENCH_OUT"

# The knobs as given, for the report (before QUICK fills in its own).
KNOBS=""
for k in QUICK REV DURATION WARMUP RUNS CONNS THREADS STREAMS CONVERSATIONS W4_MIB W4_READ_MESSAGES \
    W5_SUBSCRIBERS W5_RATE W5_BYTES W5_WRITERS W6_SUBSCRIBERS W7_MIB W7_DROP_CACHES ONLY; do
    [ -z "${!k:-}" ] || KNOBS="$KNOBS $k=${!k}"
done

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    export DURATION=${DURATION:-2} WARMUP=${WARMUP:-1} RUNS=${RUNS:-1}
    export W4_MIB=${W4_MIB:-8} W5_SUBSCRIBERS=${W5_SUBSCRIBERS:-100}
    export W6_SUBSCRIBERS=${W6_SUBSCRIBERS:-500} W7_MIB=${W7_MIB:-64}
    RESULTS=${RESULTS:-$BENCH_OUT/RESULTS-quick.md}
fi
RESULTS=${RESULTS:-$HERE/RESULTS.md}
ONLY=${ONLY:-w1 w2 w4 w5 w7 pg}
MAX_SECONDS_ALL=${MAX_SECONDS_ALL:-2700}

log() { printf '[bench] %s\n' "$*" >&2; }

if [ -z "${PARLEY:-}" ]; then
    export REV=${REV:-HEAD}
    REV_SHORT=$(git -C "$ROOT" rev-parse --short "$REV^{commit}") || { log "no commit $REV"; exit 1; }
    COMMIT=$REV_SHORT
    if [ "$REV" = HEAD ] &&
        [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        log "the work tree has uncommitted changes; measuring the commit $REV_SHORT without them"
    fi
else
    COMMIT="a binary given in PARLEY"
fi

# The whole run is bounded too: each script has its own watchdog
# (MAX_SECONDS), and this one stops the script that is running.
CURRENT=""
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$MAX_SECONDS_ALL" & s=$!
    wait "$s"
    echo "bench: over $MAX_SECONDS_ALL s in all, stopping" >&2
    kill -TERM $$
) &
WATCHDOG=$!
stop_all() {
    trap - EXIT INT TERM
    [ -z "$CURRENT" ] || kill -TERM "$CURRENT" 2>/dev/null
    [ -z "$CURRENT" ] || wait "$CURRENT" 2>/dev/null
    kill -TERM "$WATCHDOG" 2>/dev/null
    wait "$WATCHDOG" 2>/dev/null
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$SECONDS
declare -A STATUS SECS
for w in $ONLY; do
    rm -f "$BENCH_OUT/$w-summary.txt" "$BENCH_OUT/$w-latest.md"
    log "running bench/$w.sh"
    t=$SECONDS
    "$HERE/$w.sh" >"$BENCH_OUT/$w-stdout.txt" 2>"$BENCH_OUT/$w-stderr.txt" &
    CURRENT=$!
    if wait "$CURRENT"; then STATUS[$w]=ok; else STATUS[$w]="failed (exit $?)"; fi
    CURRENT=""
    SECS[$w]=$((SECONDS - t))
    log "bench/$w.sh: ${STATUS[$w]} in ${SECS[$w]} s"
    [ "${STATUS[$w]}" = ok ] || tail -n 5 "$BENCH_OUT/$w-stderr.txt" >&2
done

# ------------------------------------------------------------- summaries ---
declare -A S
for w in $ONLY; do
    [ -f "$BENCH_OUT/$w-summary.txt" ] || continue
    while IFS='=' read -r k v; do S[$k]=$v; done <"$BENCH_OUT/$w-summary.txt"
done
v() { echo "${S[$1]:-}"; }
have() { [ -n "${S[$1]:-}" ]; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {printf f, v}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) print a / b; else print 0}'; }
verdict() {   # VALUE OP LIMIT
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        r = (op == ">=") ? (a + 0 >= b + 0) : (a + 0 <= b + 0); print r ? "met" : "**not met**" }'
}
int() {
    awk -v v="$1" 'BEGIN {s = sprintf("%d", v + 0.5); o = "";
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o}'
}
row() { echo "| $1 | $2 | $3 | $4 |"; }
missing() { row "$1" "$2" "not measured (bench/$3.sh: ${STATUS[$3]:-not run})" ""; }

targets() {
    echo "| workload | target | measured | |"
    echo "|---|---|---|---|"
    if have w1.one.parley.rps && have w1.many.parley.rps; then
        for var in one many; do
            label="W1, 1 stream"; [ "$var" = one ] || label="W1, 64 streams"
            r=$(div "$(v w1.$var.parley.rps)" "$(v w1.$var.nginx.rps)")
            row "$label" "≥ 0.7× the no-op nginx" \
                "$(fmt "$r" %.2f)× ($(int "$(v w1.$var.parley.rps)") vs $(int "$(v w1.$var.nginx.rps)") req/s)" \
                "$(verdict "$r" ">=" 0.7)"
        done
        if have w1.one.mhd.rps; then
            for var in one many; do
                label="W1, 1 stream"; [ "$var" = one ] || label="W1, 64 streams"
                row "$label, libmicrohttpd alone" "for scale: the HTTP library's no-op 204" \
                    "$(fmt "$(div "$(v w1.$var.mhd.rps)" "$(v w1.$var.nginx.rps)")" %.2f)× nginx ($(int "$(v w1.$var.mhd.rps)") req/s)" ""
            done
        fi
        r=$(div "$(v w1.many.parley.rps)" "$(v w1.one.parley.rps)")
        row "W1, 64 streams vs 1" "never slower (≥ 1.00×)" "$(fmt "$r" %.2f)×" "$(verdict "$r" ">=" 1)"
        for var in one many; do
            label="W1, 1 stream"; [ "$var" = one ] || label="W1, 64 streams"
            if [ "$(v w1.writer_how)" = none ]; then
                row "$label, writer CPU" "≤ 10 µs per append" "the writer thread was not identified" ""
            else
                row "$label, writer CPU" "≤ 10 µs per append" "$(fmt "$(v w1.$var.cpu.writer)" %.1f) µs" \
                    "$(verdict "$(v w1.$var.cpu.writer)" "<=" 10)"
            fi
            row "$label, HTTP CPU" "≤ 15 µs per request" "$(fmt "$(v w1.$var.cpu.http)" %.1f) µs" \
                "$(verdict "$(v w1.$var.cpu.http)" "<=" 15)"
        done
    else
        missing W1 "≥ 0.7× nginx; CPU per append" w1
    fi
    if have w2.w2.ok_rps; then
        r=$(div "$(v w2.w2.ok_rps)" "$(v w2.w1.rps)")
        row W2 "≥ 0.5× W1 (64 streams, same run)" \
            "$(fmt "$r" %.2f)× ($(int "$(v w2.w2.ok_rps)") vs $(int "$(v w2.w1.rps)") /s)" "$(verdict "$r" ">=" 0.5)"
        row "W2, p99" "≤ 10 ms" "$(fmt "$(v w2.w2.p99_us)" %.0f | awk '{printf "%.2f ms", $1 / 1000}')" \
            "$(verdict "$(v w2.w2.p99_us)" "<=" 10000)"
        r=$(div "$(v w2.w3.ok_rps)" "$(v w2.nginx.ok_rps)")
        row W3 "≥ 0.9× the no-op nginx" \
            "$(fmt "$r" %.2f)× ($(int "$(v w2.w3.ok_rps)") vs $(int "$(v w2.nginx.ok_rps)") /s)" "$(verdict "$r" ">=" 0.9)"
    else
        missing "W2, W3" "≥ 0.5× W1, p99 ≤ 10 ms; ≥ 0.9× nginx" w2
    fi
    if have w4.ratio; then
        row W4 "≥ 0.8× nginx serving a static file of the same size" \
            "$(fmt "$(v w4.ratio)" %.2f)× ($(int "$(v w4.parley.rps)") vs $(int "$(v w4.nginx.rps)") reads/s of $(int "$(v w4.page_bytes)") bytes)" \
            "$(verdict "$(v w4.ratio)" ">=" 0.8)"
    else
        missing W4 "≥ 0.8× nginx static" w4
    fi
    if have w5.parley.p99_us; then
        row "W5, $(int "$(v w5.subscribers)") subscribers" "p99 ≤ 10 ms from the 2xx to receipt" \
            "p99 $(awk -v x="$(v w5.parley.p99_us)" 'BEGIN {printf "%.2f ms", x / 1000}'), p50 $(awk -v x="$(v w5.parley.p50_us)" 'BEGIN {printf "%.2f ms", x / 1000}') (generator alone: p99 $(awk -v x="$(v w5.source.p99_us)" 'BEGIN {printf "%.2f ms", x / 1000}'))" \
            "$(verdict "$(v w5.parley.p99_us)" "<=" 10000)"
    else
        missing W5 "p99 ≤ 10 ms" w5
    fi
    if have w6.kib_per_subscriber; then
        row "W6, $(int "$(v w6.subscribers)") idle subscribers" "≤ 8 KiB each (RSS)" \
            "$(fmt "$(v w6.kib_per_subscriber)" %.2f) KiB" "$(verdict "$(v w6.kib_per_subscriber)" "<=" 8)"
    else
        missing W6 "≤ 8 KiB per subscriber" w5
    fi
    if have pg.w1many.pgbench.rps; then
        for kind in w1one w1many w2; do
            case "$kind" in w1one) label="W1, 1 stream" ;; w1many) label="W1, 64 streams" ;; *) label=W2 ;; esac
            row "PostgreSQL, $label" "ratio against pgbench's equivalent transaction (no figure set)" \
                "1 node $(fmt "$(v pg.$kind.ratio.pg1_pgbench)" %.2f)×, 2 nodes $(fmt "$(v pg.$kind.ratio.pg2_pgbench)" %.2f)× ($(int "$(v pg.$kind.pg1.rps)") and $(int "$(v pg.$kind.pg2.rps)") vs $(int "$(v pg.$kind.pgbench.rps)") /s); SQLite $(int "$(v pg.$kind.sqlite.rps)") /s" ""
        done
    else
        missing PostgreSQL "W1/W2 ratios against pgbench" pg
    fi
    if have w7.read_ms; then
        row "W7, $(v w7.data_mib) MiB" "≤ 1 s to the first served request after kill -9" \
            "$(v w7.read_ms) ms (/healthz: $(v w7.healthz_ms) ms)" "$(verdict "$(v w7.read_ms)" "<=" 1000)"
    else
        missing W7 "≤ 1 s" w7
    fi
}


HISTORY=""
if [ -f "$HERE/RESULTS.md" ]; then
    HISTORY=$(sed -n '/^## History/,$p' "$HERE/RESULTS.md")
fi

{
    echo "# Results"
    echo
    if [ "$QUICK" = 1 ]; then
        echo "**Quick smoke run (small sizes, short runs): not comparable with a full run.**"
        echo
    fi
    echo "Written by \`make bench\` (\`bench/run.sh\`; \`bench/README.md\` says how each figure is" \
        "made). Every figure that matters is a ratio against a peer measured in the same run."
    echo
    echo "- **Date**: $START (took $(((SECONDS - T_START) / 60)) min $(((SECONDS - T_START) % 60)) s)"
    echo "- **Commit**: $COMMIT"
    echo "- **Command**: \`${KNOBS:+${KNOBS# } }make bench\`$(if [ "$QUICK" = 1 ]; then
        echo " (sizes: DURATION=$DURATION RUNS=$RUNS W4_MIB=$W4_MIB W5_SUBSCRIBERS=$W5_SUBSCRIBERS W6_SUBSCRIBERS=$W6_SUBSCRIBERS W7_MIB=$W7_MIB)"; fi)"
    echo "- **Machine**: $(nproc) cores, $(uname -sr); load generators on the same machine;" \
        "load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "- **Scripts**: $(for w in $ONLY; do printf '%s %s (%s s); ' "$w.sh" "${STATUS[$w]}" "${SECS[$w]}"; done | sed 's/; $//')"
    echo
    echo "## Against the targets (PERFORMANCE.md; fsync on every commit)"
    echo
    targets
    echo
    echo "## Details"
    for w in $ONLY; do
        echo
        if [ -s "$BENCH_OUT/$w-latest.md" ]; then
            sed 's/^### /### /' "$BENCH_OUT/$w-latest.md"
        else
            echo "### bench/$w.sh: ${STATUS[$w]}"
            echo
            echo '```'
            # Paths relative to the repository: the report names no machine path.
            tail -n 10 "$BENCH_OUT/$w-stderr.txt" 2>/dev/null | sed "s#$ROOT/##g"
            echo '```'
        fi
    done
    if [ -n "$HISTORY" ]; then
        echo
        echo "$HISTORY"
    fi
} >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
log "wrote $RESULTS"
fail=0
for w in $ONLY; do [ "${STATUS[$w]}" = ok ] || fail=1; done
exit "$fail"
