# bench/lib.sh — what the benchmark scripts share, sourced by w1.sh and
# w2.sh after they set NAME (w1, w2), TOOLS (the commands they need), HERE,
# ROOT and their knobs: the Parley binary to measure (REV, PARLEY or the
# work tree), the disk loop, a run directory on a real disk, process
# cleanup on any exit, the watchdog, free loopback ports; the nginx peer
# (a private configuration in the run directory) and the CPU time of a
# process's threads.
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
# Below the kernel's range of ephemeral ports: a port a load generator's
# outgoing connection holds as its local port would make the server's bind
# fail (a restart in w7.sh while wrk reconnects, e.g.).
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 12000 ] 2>/dev/null || EPHEMERAL_LOW=32768
NEXT_PORT=$((10000 + RANDOM % (EPHEMERAL_LOW - 11000)))
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


# ---------------------------------------------------------------- nginx ----
# The no-op HTTP peer: nginx from Debian with a private configuration in DIR
# (no daemon, one process, pid, logs and temp files in DIR, no access log),
# listening on 127.0.0.1:PORT. Every request answers `204` (`return 204`,
# the request body read and discarded), except GET /static/NAME, which
# serves the file DIR/www/static/NAME (sendfile, as a static file server
# would). `master_process off` makes the one worker the only process, so it
# runs as whoever started it and reads DIR whatever its permissions.
# Keep-alive connections are never closed by a request count (wrk keeps
# its connections for the whole run against every peer).
start_nginx() {   # PORT DIR -> appends the pid to PIDS
    local port=$1 dir=$2
    mkdir -p "$dir/www/static" "$dir/tmp"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    client_max_body_size 16m;
    types { application/json json; application/octet-stream bin; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $dir/www;
        location / { return 204; }
        location /static/ { }
    }
}
CONF
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -t >"$dir/check.log" 2>&1 ||
        die "nginx refused its configuration: $(cat "$dir/check.log")"
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/nginx.log" 2>&1 &
    PIDS+=("$!")
    wait_http "$port" "$!"
}

# ------------------------------------------------------ CPU per thread -----
# thread_cpu PID: one line per thread, "TID COMM NS", NS the thread's time
# on a CPU so far (schedstat, in ns; utime + stime from stat, in clock
# ticks, where schedstat is missing).
thread_cpu() {
    local t ns comm hz
    hz=$(getconf CLK_TCK)
    for t in /proc/"$1"/task/*; do
        comm=$(tr -c 'A-Za-z0-9_.\n-' '_' <"$t/comm" 2>/dev/null) || continue
        if ! read -r ns _ <"$t/schedstat" 2>/dev/null; then
            ns=$(sed 's/.*) //' "$t/stat" | awk -v hz="$hz" '{printf "%.0f", ($12 + $13) * 1e9 / hz}')
        fi
        echo "${t##*/} $comm $ns"
    done
}

# find_writer PID SECONDS: which thread is the writer (group commit), while
# the server is under write load. A thread named like "writer" if there is
# one; otherwise the thread most often found inside fsync/fdatasync when
# sampling /proc/PID/task/*/syscall (the writer syncs every commit, the
# checkpointer only now and then); failing that, the start-up order.
# Prints "TID HOW".
find_writer() {
    local pid=$1 secs=$2 t n f best="" bestn=0 nums
    for t in /proc/"$pid"/task/*; do
        case "$(cat "$t/comm" 2>/dev/null)" in
        *writ*|*Writ*) echo "${t##*/} named"; return 0 ;;
        esac
    done
    case "$(uname -m)" in
    x86_64) nums="74 75" ;;          # fsync, fdatasync
    aarch64|arm64) nums="82 83" ;;
    *) nums="" ;;
    esac
    declare -A seen=()
    local end=$((SECONDS + secs))
    while [ "$SECONDS" -lt "$end" ] && [ -n "$nums" ]; do
        for f in /proc/"$pid"/task/*/syscall; do
            read -r n _ <"$f" 2>/dev/null || continue
            case " $nums " in *" $n "*)
                t=${f%/syscall}; t=${t##*/}
                seen[$t]=$((${seen[$t]:-0} + 1)) ;;
            esac
        done
        sleep 0.01
    done
    for t in "${!seen[@]}"; do
        if [ "${seen[$t]}" -gt "$bestn" ]; then best=$t; bestn=${seen[$t]}; fi
    done
    if [ -n "$best" ]; then echo "$best fsync-sampling"; return 0; fi
    # None caught: the start-up order of server.c (main, hub timer,
    # checkpointer, writer, ...): the third unnamed thread after main.
    best=$(for t in /proc/"$pid"/task/*; do
        [ "${t##*/}" != "$pid" ] && [ "$(cat "$t/comm" 2>/dev/null)" = "$(cat /proc/"$pid"/comm)" ] &&
            echo "${t##*/}"
    done | sort -n | sed -n 3p)
    if [ -n "$best" ]; then echo "$best start-up-order"; else echo "0 none"; fi
}

# cpu_split BEFORE AFTER WRITER_TID: from two thread_cpu snapshots, the CPU
# (ns) used in between by the writer, by the HTTP workers (threads named
# MHD-*), and by every other thread. Prints "writer_ns=… http_ns=… other_ns=…".
cpu_split() {
    awk -v w="$3" 'NR == FNR {b[$1] = $3; next}
        {d = $3 - (($1 in b) ? b[$1] : 0)
         if ($1 == w) wr += d; else if ($2 ~ /^MHD/) h += d; else o += d}
        END {printf "writer_ns=%.0f http_ns=%.0f other_ns=%.0f\n", wr, h, o}' "$1" "$2"
}

# -------------------------------------------------------------- reports ----
median() { sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print 0}'; }
field() { sed -n "s/.*[ ,]$1=\([0-9.]*\).*/\1/p"; }   # KEY from "KEY=VALUE" pairs
int() {   # 12345.6 -> 12,346
    awk -v v="$1" 'BEGIN {s = sprintf("%d", v + 0.5); o = "";
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o}'
}
ms() { awk -v v="$1" 'BEGIN {printf "%.2f ms", v / 1000}'; }   # µs -> "1.23 ms"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "n/a"}'; }
met() {   # A >= B or A <= B (numbers) -> met / **not met**
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        r = (op == ">=") ? (a + 0 >= b + 0) : (a + 0 <= b + 0); print r ? "met" : "**not met**" }'
}
commit_label() {   # the commit measured, for the report
    if [ -n "$COMMIT" ]; then echo "$COMMIT"; return; fi
    local c
    c=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        c="$c (with uncommitted changes)"
    fi
    echo "$c"
}
machine_line() {   # LOAD_AT_START
    echo "Machine: $(nproc) cores, $(uname -sr), data on $fstype; load generator on the same" \
        "machine; load average $1 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
}
