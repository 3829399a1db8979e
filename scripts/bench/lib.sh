# Shared parts of the benchmark scripts in scripts/bench/. Source it; do not run it.
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing it sets strict mode, changes to the repository root and defines:
#   say / die                  messages on stderr with a [bench] prefix
#   require_root
#   install_missing PKG...     apt-get install the listed Debian packages that are absent
#   ensure_berth_bin [FLAG]    build target/release/berth if missing (or if its
#                              `serve --help` lacks FLAG) and make BERTH_BIN absolute
#   setup_work                 temp dir WORK with BROOT, DDIR, sockets, DOCKER_CONFIG,
#                              and the EXIT trap that stops and removes everything;
#                              WORK_FS=ext4 makes WORK a fresh file system (see there)
#   start_berth [ARGS...]      private `berth serve` (BERTH_PID), waits for /_ping
#   stop_berth
#   start_dockerd [ARGS...]    private dockerd (DOCKERD_PID), waits for /_ping
#   free_port                  a TCP port nobody listens on (loopback)
#   make_busybox_rootfs DIR    the busybox rootfs of Berth's seed image
#   median FILE / minmax FILE  statistics of a file with one number per line
#   remove_lab_cgroups         the lab sessions' cgroups left after their processes
#   stop_pid PID SECONDS, pids_mentioning STRING, wait_for_ping SOCKET PID LOG NAME
# Processes a script starts on its own (a registry, say) go in EXTRA_PIDS (space
# separated); cleanup stops them too.

set -euo pipefail
export LC_ALL=C          # EPOCHREALTIME and printf use '.' as decimal point
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # the node clients live here
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BERTH_BIN=${BERTH_BIN:-${CARGO_TARGET_DIR:-target}/release/berth}
DOCKER=${DOCKER:-docker}   # the CLI found first on PATH (28.2 here)

say() { printf '[bench] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "run as root (dockerd, mounts, namespaces)"
}

# ---------------------------------------------------------------- packages
pkg_present() {
    case $1 in
        docker.io)       command -v dockerd >/dev/null 2>&1 ;;
        busybox-static)  dpkg -s busybox-static >/dev/null 2>&1 && [ -x /bin/busybox ] ;;
        docker-registry) command -v docker-registry >/dev/null 2>&1 ;;
        *)               dpkg -s "$1" >/dev/null 2>&1 ;;
    esac
}

install_missing() {
    local p
    local -a need=()
    for p in "$@"; do pkg_present "$p" || need+=("$p"); done
    if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]} with apt"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    command -v "$DOCKER" >/dev/null 2>&1 || die "no docker CLI ($DOCKER) on PATH"
}

# ---------------------------------------------------------------- berth binary
berth_has_flag() { [ -z "${1-}" ] || "$BERTH_BIN" serve --help 2>/dev/null | grep -q -- "$1"; }

ensure_berth_bin() {
    local flag=${1-}
    if [ ! -x "$BERTH_BIN" ] || ! berth_has_flag "$flag"; then
        if [ -x "$BERTH_BIN" ]; then
            say "$BERTH_BIN has no serve $flag (stale build): cargo build --release -p berth-server"
        else
            say "$BERTH_BIN missing: cargo build --release -p berth-server"
        fi
        cargo build --release -p berth-server || die "cargo build --release -p berth-server failed"
        [ -x "$BERTH_BIN" ] || die "$BERTH_BIN still missing after the build"
        berth_has_flag "$flag" || die "$BERTH_BIN serve still has no $flag after the build"
    fi
    BERTH_BIN=$(realpath "$BERTH_BIN")
}

# ---------------------------------------------------------------- temp state
setup_work() {
    # Keep the path short: Berth puts shim sockets at ROOT/containers/<64 hex>/shim.sock
    # and a unix socket path must stay under 108 bytes.
    WORK=$(mktemp -d /tmp/bench.XXXXXX)
    WORK_IMG=""
    case ${WORK_FS:-host} in
        host) ;;
        ext4)
            # A fresh ext4 with a journal (mkfs.ext4's defaults, as on a Debian install)
            # in a sparse file beside WORK, mounted on it: both daemons' data start on
            # the same clean file system, whatever the host's own is. (This VM's root
            # ext4 has no journal; there ext4 checks each free inode it could hand out
            # for a recent deletion, so unpacking 10,000 files minutes after 10,000
            # were deleted is several times slower: the state of /tmp, not the engine.)
            WORK_IMG=$WORK.img
            truncate -s "${WORK_FS_SIZE:-16G}" "$WORK_IMG" &&
                mkfs.ext4 -q -F "$WORK_IMG" &&
                mount -o loop "$WORK_IMG" "$WORK" ||
                { rm -f "$WORK_IMG"; rmdir "$WORK"; die "WORK_FS=ext4: could not make and mount an ext4 image at $WORK_IMG"; }
            ;;
        *) rmdir "$WORK"; die "WORK_FS must be host or ext4, not $WORK_FS" ;;
    esac
    BROOT=$WORK/b                    # berth --root
    DDIR=$WORK/d                     # dockerd data-root, exec-root, pidfile, socket
    BERTH_SOCK=$WORK/berth.sock
    DOCKERD_SOCK=$DDIR/dockerd.sock
    export DOCKER_CONFIG=$WORK/cfg
    mkdir -p "$DDIR/data" "$DDIR/exec" "$DOCKER_CONFIG"
    echo '{}' > "$DOCKER_CONFIG/config.json"
    echo '{}' > "$DDIR/daemon.json"  # so /etc/docker/daemon.json is not read
    BERTH_PID=""
    DOCKERD_PID=""
    EXTRA_PIDS=""
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# PIDs of processes (other than this script) whose command line mentions $1.
pids_mentioning() {
    local f pid args
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}; pid=${pid%/cmdline}
        [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
        args=$(tr "\0" " " 2>/dev/null <"$f") || continue
        case "$args" in *"$1"*) echo "$pid" ;; esac
    done
}

# Berth shims of this run, by PID: `berth shim $WORK/.../containers/ID`, or
# `berth shim - $WORK/...` (started ahead of its container; see engine/src/engine/standby.rs).
berth_shim_pids() {
    local f pid
    local -a argv
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}; pid=${pid%/cmdline}
        mapfile -d "" argv 2>/dev/null <"$f" || continue
        [ "${argv[1]-}" = shim ] || continue
        if [[ "${argv[2]-}" == "$WORK"/* || ( "${argv[2]-}" = - && "${argv[3]-}" == "$WORK"/* ) ]]; then
            echo "$pid"
        fi
    done
    return 0
}

stop_pid() {            # stop_pid PID SECONDS: TERM, wait, then KILL
    local pid=$1 t=$(( $2 * 10 ))
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while [ $t -gt 0 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; t=$((t - 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

unmount_under() {       # deepest first; lazy so a busy mount cannot block cleanup
    local m
    awk -v p="$1/" 'index($5, p) == 1 { print length($5), $5 }' /proc/self/mountinfo |
        sort -rn | cut -d' ' -f2- | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
        done
}

cleanup() {
    local rc=$? p
    set +e
    if [ -n "$BERTH_PID" ]; then stop_pid "$BERTH_PID" 5; fi
    for p in $(berth_shim_pids); do kill -KILL "$p" 2>/dev/null; done
    if [ -n "$DOCKERD_PID" ]; then stop_pid "$DOCKERD_PID" 20; fi
    for p in $EXTRA_PIDS; do stop_pid "$p" 5; done
    # dockerd's own containerd and containerd-shims name paths under $DDIR.
    for p in $(pids_mentioning "$DDIR"); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.2
    unmount_under "$WORK"
    if [ -n "$WORK_IMG" ]; then
        # The loop device goes with the mount (mount -o loop sets it to clear itself).
        umount "$WORK" 2>/dev/null || umount -l "$WORK" 2>/dev/null || say "could not unmount $WORK"
        rm -f "$WORK_IMG"
    fi
    rm -rf "$WORK" 2>/dev/null || say "could not remove all of $WORK"
    exit "$rc"
}

wait_for_ping() {       # wait_for_ping SOCKET PID LOG NAME
    local i
    for i in $(seq 1 300); do
        if curl -sf --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then
            say "$4 exited before answering /_ping; last lines of $3:"
            tail -n 20 "$3" >&2
            return 1
        fi
        sleep 0.1
    done
    say "$4 did not answer /_ping within 30 s; last lines of $3:"
    tail -n 20 "$3" >&2
    return 1
}

# The cgroups of this run's lab sessions (berth/lab-<id12> for each $BROOT/lab/<id>,
# each holding its containers' cgroups), once their processes are dead: deepest
# first, each retried while the kernel lets go.
remove_lab_cgroups() {
    local d f id
    for id in $(ls "$BROOT/lab" 2>/dev/null); do
        [ -d "$BROOT/lab/$id" ] || continue
        for d in $(find /sys/fs/cgroup -maxdepth 3 -type d -path "*/berth/lab-${id:0:12}" 2>/dev/null); do
            for f in $(find "$d" -mindepth 1 -depth -type d 2>/dev/null) "$d"; do
                for _ in 1 2 3 4 5; do rmdir "$f" 2>/dev/null && break; sleep 0.2; done
                [ -d "$f" ] && say "could not remove the cgroup $f"
            done
        done
    done
    return 0
}

# ---------------------------------------------------------------- daemons
start_berth() {         # start_berth [EXTRA SERVE ARGS...]
    say "berth: $BERTH_BIN serve --root $BROOT $*"
    "$BERTH_BIN" serve --root "$BROOT" --docker-host "unix://$BERTH_SOCK" "$@" >"$WORK/berth.log" 2>&1 &
    BERTH_PID=$!
    wait_for_ping "$BERTH_SOCK" "$BERTH_PID" "$WORK/berth.log" "berth serve"
}

stop_berth() {
    if [ -n "$BERTH_PID" ]; then stop_pid "$BERTH_PID" 5; fi
    BERTH_PID=""
}

start_dockerd() {       # start_dockerd [EXTRA DOCKERD ARGS...]
    say "dockerd: $(dockerd --version) $*"
    dockerd --config-file "$DDIR/daemon.json" \
        --data-root "$DDIR/data" --exec-root "$DDIR/exec" --pidfile "$DDIR/dockerd.pid" \
        -H "unix://$DOCKERD_SOCK" --bridge=none --iptables=false --ip6tables=false "$@" \
        >"$DDIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    wait_for_ping "$DOCKERD_SOCK" "$DOCKERD_PID" "$DDIR/dockerd.log" dockerd
}

# A loopback TCP port with no listener (IPv4 or IPv6), from 20000-31999, below
# Linux's default ephemeral range so outgoing connections do not take it meanwhile.
free_port() {
    local used="" p i
    for p in $(awk 'NR > 1 && $4 == "0A" { n = split($2, a, ":"); print a[n] }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
        used+=" $((16#$p)) "
    done
    for i in $(seq 1 100); do
        p=$(( 20000 + RANDOM % 12000 ))
        [[ "$used" == *" $p "* ]] || { echo "$p"; return 0; }
    done
    die "no free port found"
}

# ---------------------------------------------------------------- busybox rootfs
# Same recipe as Berth's seed image (ARCHITECTURE.md "Images without the internet").
make_busybox_rootfs() {
    local r=$1 a
    mkdir -p "$r/bin" "$r/tmp" "$r/etc" "$r/root" "$r/proc" "$r/sys" "$r/dev"
    cp /bin/busybox "$r/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
    done
    chmod 1777 "$r/tmp"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
    echo 'root:x:0:' > "$r/etc/group"
}

# ---------------------------------------------------------------- statistics
median() {
    sort -n "$1" | awk '{ v[NR] = $1 }
        END { if (NR == 0) exit 1
              if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f\n", m }'
}
minmax() { sort -n "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "min %.3f max %.3f", lo, hi }'; }

# ---------------------------------------------------------------- class-scale helpers
# Used by class-start, same-command, same-image and same-build (the older scripts keep
# their own copies of some of these).
#   require_node               node with WebSocket and fetch (20.10+), for the clients
#   wait_web BASE              until the web listener answers /api/lessons
#   lab_teardown               the EXIT trap of a script with lab sessions: the
#                              containers' processes, the shims, the sessions' cgroups,
#                              then lib.sh's cleanup (KEEP=DIR: copies the results and
#                              logs there first)
#   end_sessions BASE ID...    DELETE /api/sessions/ID, 4 at a time (disks, cgroups go)
#   percentile FILE P [D]      the P-th percentile (0..1, nearest rank) of one number a line,
#                              with D decimals (1)
#   mem_available_kb           MemAvailable, the mean of 3 readings 0.5 s apart
#   rss_kb PID / pss_kb PID    VmRSS, and Pss from smaps_rollup
#   lab_cgroup_memory          this run's sessions' memory cgroups: "usage_kb rss_kb count"
#   start_dockerd_netns [ARGS] start_dockerd in a network namespace of its own (DOCKERD_NET,
#                              for nsenter --net), with its default bridge: published
#                              ports and RUN steps work, and the host's network is untouched
#   in_dockerd_net CMD...      run CMD in that network namespace
require_node() {
    command -v node >/dev/null 2>&1 || die "node (20.10 or later) is needed for the clients: apt-get install nodejs"
    node --experimental-websocket -e 'if (typeof WebSocket !== "function" || typeof fetch !== "function") process.exit(1)' 2>/dev/null ||
        die "this node ($(node --version)) has no WebSocket or fetch: node 20.10 or later is needed"
}

wait_web() {
    local i
    for i in $(seq 1 200); do
        curl -sf "$1/api/lessons" >/dev/null 2>&1 && return 0
        kill -0 "$BERTH_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$WORK/berth.log" >&2
    die "the web listener on $1 did not answer"
}

# The containers' own processes (workstation shells, busyboxes) by their container.json.
lab_container_pids() {
    local f
    for f in "$BROOT"/containers/*/container.json; do
        [ -f "$f" ] || continue
        grep -oE '"(pid|shim_pid)": *[0-9]+' "$f" | grep -oE '[0-9]+$' | grep -v '^0$' || true
    done
}

lab_teardown() {
    local rc=$? p
    set +e
    # KEEP=DIR: the clients' raw results and the daemons' logs, for a closer look.
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP" && find "$WORK" -maxdepth 1 \( -name '*.json' -o -name '*.log' \) -type f -exec cp --backup=numbered -t "$KEEP" {} + 2>/dev/null
        find "$WORK" -maxdepth 2 -name dockerd.log -type f -exec cp --backup=numbered -t "$KEEP" {} + 2>/dev/null
    fi
    if [ -n "$BERTH_PID" ]; then stop_pid "$BERTH_PID" 5; fi
    BERTH_PID=""
    for p in $(lab_container_pids) $(berth_shim_pids); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.5
    remove_lab_cgroups
    # A dockerd in its own network namespace: once it is stopped, whatever is left in
    # that namespace (docker-proxy, container processes) is this run's.
    if [ -n "${DOCKERD_NETNS_INODE:-}" ]; then
        if [ -n "$DOCKERD_PID" ]; then stop_pid "$DOCKERD_PID" 20; fi
        DOCKERD_PID=""
        for p in $(pids_in_netns "$DOCKERD_NETNS_INODE"); do kill -KILL "$p" 2>/dev/null; done
    fi
    (exit "$rc")
    cleanup
}

pids_in_netns() {       # pids_in_netns INODE: processes whose network namespace it is
    local f pid
    for f in /proc/[0-9]*/ns/net; do
        pid=${f#/proc/}; pid=${pid%/ns/net}
        [ "$(readlink "$f" 2>/dev/null)" = "net:[$1]" ] && echo "$pid"
    done
    return 0
}

end_sessions() {        # end_sessions BASE ID...: what a student's "end" does, for each
    local base=$1; shift
    [ $# -gt 0 ] || return 0
    printf '%s\n' "$@" | xargs -P 4 -I{} curl -sf -o /dev/null -X DELETE "$base/api/sessions/{}" ||
        say "ending some sessions through the API failed (the cleanup removes what is left)"
}

percentile() {          # percentile FILE P [DECIMALS, default 1]
    sort -n "$1" | awk -v p="$2" -v d="${3:-1}" '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
        i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%." d "f", v[i] }'
}

mem_available_kb() {
    local i s=0
    for i in 1 2 3; do
        s=$((s + $(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)))
        [ "$i" = 3 ] || sleep 0.5
    done
    echo $((s / 3))
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

lab_cgroup_memory() {
    local id d usage=0 rss=0 n=0 u r
    for id in $(ls "$BROOT/lab" 2>/dev/null); do
        if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
            d=/sys/fs/cgroup/berth/lab-${id:0:12}
            [ -f "$d/memory.current" ] || continue
            u=$(cat "$d/memory.current"); r=$(awk '$1 == "anon" { print $2 }' "$d/memory.stat")
        else
            d=/sys/fs/cgroup/memory/berth/lab-${id:0:12}
            [ -f "$d/memory.usage_in_bytes" ] || continue
            u=$(cat "$d/memory.usage_in_bytes"); r=$(awk '$1 == "total_rss" { print $2 }' "$d/memory.stat")
        fi
        usage=$((usage + u / 1024)); rss=$((rss + ${r:-0} / 1024)); n=$((n + 1))
    done
    echo "$usage $rss $n"
}

start_dockerd_netns() {
    say "dockerd in a network namespace of its own: $(dockerd --version) $*"
    # unshare execs the shell, which execs dockerd: DOCKERD_PID is dockerd's own PID,
    # and its containerd and containers inherit the namespace.
    unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
        dockerd --config-file "$DDIR/daemon.json" \
        --data-root "$DDIR/data" --exec-root "$DDIR/exec" --pidfile "$DDIR/dockerd.pid" \
        -H "unix://$DOCKERD_SOCK" --iptables=false --ip6tables=false "$@" \
        >"$DDIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    DOCKERD_NET=/proc/$DOCKERD_PID/ns/net
    # The namespace's inode, once unshare made it (for the cleanup of what is left in it).
    local i
    for i in $(seq 1 50); do
        DOCKERD_NETNS_INODE=$(readlink "$DOCKERD_NET" 2>/dev/null | tr -dc 0-9)
        [ -n "$DOCKERD_NETNS_INODE" ] && [ "net:[$DOCKERD_NETNS_INODE]" != "$(readlink /proc/self/ns/net)" ] && break
        DOCKERD_NETNS_INODE=""
        sleep 0.1
    done
    wait_for_ping "$DOCKERD_SOCK" "$DOCKERD_PID" "$DDIR/dockerd.log" dockerd
}

in_dockerd_net() { nsenter --net="$DOCKERD_NET" "$@"; }
