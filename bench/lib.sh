# bench/lib.sh — what the benchmark scripts share, sourced by w1.sh and
# w2.sh after they set NAME (w1, w2), TOOLS (the commands they need), HERE,
# ROOT and their knobs: the Parley binary to measure (REV, PARLEY or the
# work tree), the disk loop, a run directory on a real disk, process
# cleanup on any exit, the watchdog, free loopback ports.
# shellcheck shell=bash

log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }
die() { printf '%s: %s\n' "$NAME" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools ----
for t in $TOOLS; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/setup installs what is needed)"
done

# -------------------------------------------------------------- builds -----
mkdir -p "$BENCH_OUT"
COMMIT=""
if [ -n "${PARLEY:-}" ]; then
    COMMIT="a binary given in PARLEY"
elif [ -n "${REV:-}" ]; then
    # Exactly one commit, whatever the work tree holds.
    rev=$(git -C "$ROOT" rev-parse --short "$REV^{commit}") || die "no commit $REV"
    src="$BENCH_OUT/src-$rev"
    if [ ! -x "$src/build/parley" ]; then
        log "building Parley $rev (Release) in $src"
        rm -rf "$src" && mkdir -p "$src"
        git -C "$ROOT" archive --format=tar "$rev" | tar -x -C "$src"
        cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF >/dev/null
        cmake --build "$src/build" -j2 >/dev/null
    fi
    PARLEY="$src/build/parley"
    COMMIT=$rev
else
    log "building Parley (Release) in build-bench/"
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF >/dev/null
    cmake --build "$ROOT/build-bench" -j2 >/dev/null
    PARLEY="$ROOT/build-bench/parley"
fi
[ -x "$PARLEY" ] || die "no Parley binary at $PARLEY"

FSYNC_LOOP="$BENCH_OUT/fsync_loop"
cc -O2 -Wall -Wextra -o "$FSYNC_LOOP" "$HERE/fsync_loop.c"

# ------------------------------------------------------- data directory ----
RUN_DIR=$(mktemp -d "$BENCH_OUT/$NAME.XXXXXX")
fstype=$(stat -f -c %T "$RUN_DIR")
case "$fstype" in
tmpfs|ramfs) rm -rf "$RUN_DIR"; die "$BENCH_OUT is on $fstype; point BENCH_OUT at a real disk" ;;
esac

# ------------------------------------------------------ process cleanup ----
PIDS=()
CHILD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in $CHILD "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $CHILD "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ]; then
        log "kept $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The whole measurement is bounded: the watchdog ends it after MAX_SECONDS.
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$MAX_SECONDS" & s=$!
    wait "$s"
    echo "$NAME: over $MAX_SECONDS s, stopping" >&2
    kill -TERM $$
) &
PIDS+=("$!")

# Runs a load generator in the background and waits for it, so that a signal
# stops the script at once (bash runs traps only between foreground commands)
# and cleanup() can stop the child too.
bg_wait() {
    local rc=0
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    [ "$rc" = 0 ] || die "$* failed (exit $rc)"
}

# ---------------------------------------------------------------- ports ----
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=$((20000 + RANDOM % 20000))
free_port() {
    while ! port_free "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    echo "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}

wait_http() {   # PORT PID
    for _ in $(seq 150); do
        kill -0 "$2" 2>/dev/null || die "server on port $1 exited (see $RUN_DIR)"
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.2
    done
    die "server on port $1 did not answer"
}

