#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# bench/run.sh: measure lazyvol side by side with a peer doing the same
# work, in one run on this machine, and print a table of ratios.
#
#   bench/run.sh [OPTIONS] [MEASUREMENT...]
#
# Measurements (default: all of them, in this order):
#   read     sequential read of a resident 1 GiB export vs nbdkit's file plugin
#   iops     4 KiB random read and write IOPS vs nbdkit's file plugin
#   publish  snapshot of 256 and 1024 dirty MiB vs cp+fsync (file store)
#            and vs one curl PUT and a boto3 multipart upload (S3)
#   sparse   snapshot of 8 dirty MiB of a 1 TiB export (and its peak RSS)
#   clone    clone of a 1 TiB export vs clone of a 1 GiB export
#   compact  compact of a 1 GiB export vs cp+fsync / boto3 upload
#   cold     cold sequential read of 1 GiB from S3 vs the best raw curl
#            download, nbdkit's S3 plugin, s3backer and a CPU baseline
#            (curl to a file + SHA-256); the reader's peak RSS, and
#            every process's CPU time
#   rand     cold 4 KiB random reads, 32 in flight, of exports of 4 MiB
#            and of 64 KiB chunks vs 32 parallel ranged GETs of a chunk
# S3 measurements use a local Swift (tests/s3-server.sh); without it
# they are listed as skipped.  bench/README explains every row.
#
# Options:
#   --plugin PATH   the plugin (default: _build/plugin/.libs/... of this tree)
#   --scratch DIR   where the scratch directory is made (default /var/tmp);
#                   it needs about 10 GiB and is removed at the end
#   --runs N        repetitions of each measurement (default 3); the table
#                   shows medians and the spread (half the range, in %)
#   --keep          keep the scratch directory (logs, stores, and "raw":
#                   every run's value of every row)
#   --no-s3         skip the S3 measurements
#   --link          run the S3 rows of publish, cold and rand twice: on
#                   bare loopback, then through
#                   tests/store-proxy --shape, a link like a remote store's
#                   (30 ms to a reply's first byte, 100 MB/s a connection,
#                   400 MB/s in all)
#   --store-proxy PATH  the proxy (default: _build/tests/store-proxy of this
#                   tree; "make check TESTS=" builds it)
#   --param KEY=VALUE  an extra plugin parameter for every lazyvol server
#                   (repeatable), e.g. --param cache-max-size=2G
#
# Nothing is built here.  Every process started is stopped on exit,
# including on ^C.  The scratch directory is kept if a measurement fails
# (its logs say why), removed otherwise.  Timings are printed, never
# asserted: the machine may be shared, so peers are measured in the same
# run, interleaved.
set -e
set -u
set -o pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
PY=/usr/bin/python3             # the one with boto3 (python3-boto3)

plugin=
scratch_parent=${TMPDIR:-/var/tmp}
runs=3
keep=false
use_s3=true
link=false
store_proxy=$top/_build/tests/store-proxy
params=()
all="read iops publish sparse clone compact cold rand"
selected=()

die ()
{
    echo "bench: $*" >&2
    exit 1
}

usage ()
{
    sed -n '4,/^$/{s/^# \{0,1\}//;p}' "$0"
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case $1 in
        --plugin) [ $# -ge 2 ] || usage 1; plugin=$2; shift ;;
        --plugin=*) plugin=${1#*=} ;;
        --scratch) [ $# -ge 2 ] || usage 1; scratch_parent=$2; shift ;;
        --scratch=*) scratch_parent=${1#*=} ;;
        --runs) [ $# -ge 2 ] || usage 1; runs=$2; shift ;;
        --runs=*) runs=${1#*=} ;;
        --keep) keep=true ;;
        --no-s3) use_s3=false ;;
        --link) link=true ;;
        --store-proxy) [ $# -ge 2 ] || usage 1; store_proxy=$2; shift ;;
        --store-proxy=*) store_proxy=${1#*=} ;;
        --param) [ $# -ge 2 ] || usage 1; params+=("$2"); shift ;;
        --param=*) params+=("${1#*=}") ;;
        -h|--help) usage 0 ;;
        -*) echo "bench: unknown option $1" >&2; usage 1 ;;
        *)
            case " $all " in
                *" $1 "*) selected+=("$1") ;;
                *) die "unknown measurement '$1' (want: $all)" ;;
            esac
            ;;
    esac
    shift
done
[ ${#selected[@]} -gt 0 ] || read -r -a selected <<< "$all"
case $runs in ''|*[!0-9]*|0) die "--runs wants a positive number" ;; esac

# The plugin, and the tools every measurement needs.
if [ -z "$plugin" ]; then
    for p in "$top/_build/plugin/.libs/nbdkit-lazyvol-plugin.so" \
             "$top/plugin/.libs/nbdkit-lazyvol-plugin.so"; do
        [ -f "$p" ] && { plugin=$p; break; }
    done
    [ -n "$plugin" ] ||
        die "no plugin built in $top/_build; build it or pass --plugin PATH"
fi
[ -f "$plugin" ] || die "plugin $plugin not found"
plugin=$(cd "$(dirname "$plugin")" && pwd)/$(basename "$plugin")

need ()
{
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            die "'$c' is not installed (it is needed for: ${selected[*]})"
    done
}
need nbdkit nbdcopy jq awk head cp sync date
[ -x "$PY" ] || die "$PY is not installed (Debian: python3)"
wants ()
{
    case " ${selected[*]} " in *" $1 "*) return 0 ;; esac
    return 1
}
if wants iops; then
    need fio
    fio --enghelp 2>/dev/null | grep -qw nbd ||
        die "this fio has no nbd ioengine (it needs fio built with libnbd)"
fi
if wants rand; then
    "$PY" -c 'import nbd' 2>/dev/null ||
        die "rand needs libnbd's Python module (Debian: python3-libnbd)"
fi
if $link && { wants cold || wants rand || wants publish; }; then
    [ -x "$store_proxy" ] ||
        die "--link needs $store_proxy (make check TESTS=, or --store-proxy PATH)"
fi
nbdkit file --version >/dev/null 2>&1 ||
    die "nbdkit's file plugin is not installed (Debian: nbdkit)"
nbdkit "$plugin" --version >/dev/null 2>&1 ||
    die "nbdkit cannot load $plugin"

# S3: the Swift fixture from the test suite, boto3 and curl with SigV4.
s3_why=
if ! $use_s3; then
    s3_why="--no-s3"
elif [ ! -x "$top/tests/s3-server.sh" ]; then
    s3_why="no S3 fixture (tests/s3-server.sh) in this tree"
elif ! "$PY" -c 'import boto3, swift.common.middleware.s3api' 2>/dev/null
then
    s3_why="needs python3-boto3 and python3-swift"
elif ! command -v curl >/dev/null ||
        ! curl --help all 2>/dev/null | grep -q -- --aws-sigv4; then
    s3_why="needs curl with --aws-sigv4 (7.75 or later)"
fi

# Scratch directory and cleanup: every process we start is in $pids.
mkdir -p "$scratch_parent"
work=$(mktemp -d "$scratch_parent/lazyvol-bench.XXXXXX")
pids=()
s3_dir=
cleanup ()
{
    local status=$? pid i
    set +e
    trap '' INT TERM
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill "$pid" 2>/dev/null
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        for i in $(seq 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # An s3backer killed (not stopped) may leave its mount behind.
    for m in "$work"/*/mnt; do
        grep -qs " $m fuse" /proc/mounts && umount -l "$m"
    done
    [ -n "$s3_dir" ] && "$top/tests/s3-server.sh" stop "$s3_dir"
    if $keep || { [ $status != 0 ] && [ $status != 130 ]; }; then
        echo "bench: scratch directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS CMD...: retry CMD until it succeeds or time runs out.
wait_for ()
{
    local timeout=$1 start
    shift
    start=$(date +%s)
    until "$@"; do
        [ $(( $(date +%s) - start )) -lt "$timeout" ] || return 1
        sleep 0.1
    done
}

# Servers.  Each has a directory $work/NAME holding nbd.sock, its log and
# (for lazyvol) cache/ and ctl.sock.  start_* sets $srv_pid.  Every
# nbdkit, lazyvol's and the peers', serves 64 requests of a connection
# at once, as lazyvold starts it (its --threads default; nbdkit's own is
# 16, which would cap a cold read's or QD 32's fetches in flight).
start_server ()
{
    local name=$1 d=$work/$1
    shift
    mkdir -p "$d"
    rm -f "$d/nbd.sock"
    nbdkit -f --threads 64 -U "$d/nbd.sock" "$@" </dev/null >"$d/log" 2>&1 &
    srv_pid=$!
    pids+=("$srv_pid")
    echo "$srv_pid" > "$d/pid"
    wait_for 60 test -S "$d/nbd.sock" ||
        die "nbdkit ($name) did not start; see $d/log"
}

# start_file NAME IMAGE: nbdkit's file plugin serving IMAGE.
start_file ()
{
    start_server "$1" file "$2"
}

# start_lazyvol NAME [PLUGIN-ARGS...]: the plugin on the current store
# ($store_args), ready when its control socket answers.
start_lazyvol ()
{
    local name=$1 d=$work/$1
    shift
    start_server "$name" "$plugin" "cache-root=$d/cache" \
        "control=$d/ctl.sock" "${store_args[@]}" "$@" \
        ${params[@]+"${params[@]}"}
    wait_for 60 ctl_ok "$name" '{"cmd":"ping"}' ||
        die "lazyvol ($name) control socket did not answer; see $d/log"
}

# stop_server NAME: SIGTERM, and wait until it is gone.
stop_server ()
{
    local pid i
    [ -f "$work/$1/pid" ] || return 0
    pid=$(cat "$work/$1/pid")
    rm -f "$work/$1/pid"
    kill "$pid" 2>/dev/null
    for i in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "nbdkit ($1) did not exit"
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

# forget_pid PID: a process we started has been reaped; never signal it
# again (its number may be reused).
forget_pid ()
{
    local p keep=()
    for p in ${pids[@]+"${pids[@]}"}; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    pids=(${keep[@]+"${keep[@]}"})
}

# uri NAME [EXPORT]: the NBD URI of server NAME.
uri ()
{
    echo "nbd+unix:///${2:-}?socket=$work/$1/nbd.sock"
}

# ctl NAME JSON: run a control request on lazyvol NAME; prints
# "SECONDS REPLY" (tests/ctl.py --time).
ctl ()
{
    "$PY" "$top/tests/ctl.py" --time "$work/$1/ctl.sock" "$2"
}

ctl_ok ()
{
    ctl "$@" >/dev/null 2>&1
}

# ctl_time NAME JSON: run a request that must succeed; print its seconds.
ctl_time ()
{
    local out
    out=$(ctl "$1" "$2") || die "$1: $2 failed: ${out#* }"
    echo "${out%% *}"
}

# peak_rss_mib NAME: the peak resident set (VmHWM) of server NAME, in MiB.
peak_rss_mib ()
{
    awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' \
        "/proc/$(cat "$work/$1/pid")/status"
}

# Timing.
now_ns ()
{
    date +%s%N
}

# secs_since T0: seconds elapsed since now_ns printed T0.
secs_since ()
{
    awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
}

# mib_per_s MIB SECONDS
mib_per_s ()
{
    awk -v m="$1" -v s="$2" 'BEGIN { printf "%.3f\n", m / s }'
}

# The table.  row LABEL GOAL PEER-NAME "LAZYVOL-VALUES" "PEER-VALUES"
# records one line: the medians of both lists of values, the spread of
# each (half the range, relative to the median), the ratio of the medians
# lazyvol/peer, the ratio of each side's best run (the least disturbed:
# the lowest for times and sizes, the highest for rates), and whether
# GOAL is met by the medians.  GOAL is "OP Nx" (a bound on the
# ratio: ">= 0.9x"), "OP N UNIT" (a bound on lazyvol's median: "< 1 s"),
# or "-" (none).  The peer's values may be empty (no peer).
results=$work/results
: > "$results"
row ()
{
    local label=$1 goal=$2 peer_name=$3 lazy=$4 peer=$5 line
    line=$(awk -v label="$label" -v goal="$goal" -v pname="$peer_name" \
               -v lazy="$lazy" -v peer="$peer" '
        function sort_(a, n,   i, j, t) {
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
                    t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
                }
        }
        function median(a, n) {
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function fmt(v) {
            if (v >= 100) return sprintf("%.0f", v)
            if (v >= 10) return sprintf("%.1f", v)
            if (v >= 1) return sprintf("%.2f", v)
            return sprintf("%.3f", v)
        }
        # "MEDIAN ±S%" of the space-separated values in S; sets MED.
        function summary(s,   a, n, sp) {
            n = split(s, a, " ")
            sort_(a, n)
            MED = median(a, n)
            sp = MED > 0 ? (a[n] - a[1]) / 2 / MED * 100 : 0
            return n > 1 ? sprintf("%s ±%.0f%%", fmt(MED), sp) : fmt(MED)
        }
        # The best of the values in S: the lowest or the highest.
        function best(s,   a, n, i, b) {
            n = split(s, a, " ")
            b = a[1]
            for (i = 2; i <= n; i++)
                if (lower ? a[i] < b : a[i] > b) b = a[i]
            return b
        }
        BEGIN {
            lower = label ~ /\((s|MiB)\)$/
            l = summary(lazy); lm = MED
            p = "-"; ratio = "-"; bratio = "-"; status = "-"
            if (peer != "") {
                p = summary(peer) " (" pname ")"; pm = MED
                if (pm > 0) { r = lm / pm; ratio = sprintf("%.2fx", r) }
                if (best(peer) > 0)
                    bratio = sprintf("%.2fx", best(lazy) / best(peer))
            }
            if (goal != "-") {
                n = split(goal, g, " ")
                op = g[1]; bound = g[2]; v = lm
                if (bound ~ /x$/) { sub(/x$/, "", bound); v = r }
                ok = (op == ">=" && v >= bound) || (op == "<=" && v <= bound) ||
                     (op == "<" && v < bound) || (op == ">" && v > bound)
                status = ok ? "met" : "MISSED"
            }
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, l, p, ratio,
                bratio, goal, status
        }')
    echo "$line" >> "$results"
    echo "$label: lazyvol" $lazy "; peer" ${peer:--} >> "$work/raw"
    print_row "$line"
}

# skip LABEL WHY: a row for a measurement that could not run.
skip ()
{
    local line
    line=$(printf '%s\t%s' "$1" "skipped: $2")
    echo "$line" >> "$results"
    print_row "$line"
}

print_row ()
{
    local IFS=$'\t' line
    # shellcheck disable=SC2086
    set -- ${1//±/@}
    # printf pads bytes: pad with a one-byte stand-in for "±".
    line=$(printf '%-36s %-14s %-28s %-6s %-6s %-9s %s' "$1" "${2:-}" \
               "${3:-}" "${4:-}" "${5:-}" "${6:-}" "${7:-}")
    echo "${line//@/±}"
}

print_header ()
{
    printf '%-36s %-14s %-28s %-6s %-6s %-9s %s\n' measurement lazyvol peer \
        ratio best goal status
}

# Data: random bytes (nothing compresses or dedups), made once.
# data MIB: the path of a file of MIB random MiB (a prefix of the largest).
data ()
{
    local f=$work/data/$1M
    if [ ! -f "$f" ]; then
        mkdir -p "$work/data"
        if [ ! -f "$work/data/1024M" ]; then
            head -c 1G /dev/urandom > "$work/data/1024M.tmp"
            mv "$work/data/1024M.tmp" "$work/data/1024M"
        fi
        [ "$1" = 1024 ] || head -c "$1M" "$work/data/1024M" > "$f"
    fi
    echo "$f"
}

# The stores.  use_store file|s3 [ENDPOINT] sets $store_args (plugin
# parameters) and $s3_endpoint (ENDPOINT, default Swift's own), and
# exports the S3 credentials for the plugin, boto3, curl and s3backer.
store_args=()
s3_endpoint=
use_store ()
{
    case $1 in
        file)
            store_args=(storage-backend=file "bucket=$work/store")
            ;;
        s3)
            if [ -z "$s3_dir" ]; then
                # cond-put: a store without conditional puts gives no
                # lease, and lazyvol loads its exports read-only.
                s3_dir=$work/s3
                "$top/tests/s3-server.sh" start "$s3_dir" cond-put >/dev/null ||
                    die "the S3 fixture did not start; see $s3_dir/log"
                # shellcheck disable=SC1091
                . "$s3_dir/s3.env"
                export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
                export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
                export AWS_DEFAULT_REGION=$S3_REGION
                export S3_ENDPOINT S3_BUCKET S3_REGION
            fi
            s3_endpoint=${2:-$S3_ENDPOINT}
            store_args=(storage-backend=s3 "bucket=$S3_BUCKET"
                        "endpoint-url=$s3_endpoint" "region=$S3_REGION")
            ;;
    esac
}

# each_link FUNC ARGS...: run "FUNC PREFIX ENDPOINT PROXY-PID ARGS..."
# on bare loopback (PREFIX and PROXY-PID empty, ENDPOINT Swift's), then
# with --link again through the shaped link: PREFIX "link: ", ENDPOINT
# and PROXY-PID tests/store-proxy's (started at the first call, stopped
# on exit).  Needs use_store s3 first.
link_pid=
each_link ()
{
    local f=$1
    shift
    "$f" "" "$S3_ENDPOINT" "" "$@"
    $link || return 0
    if [ -z "$link_pid" ]; then
        mkdir -p "$work/link"
        "$store_proxy" --upstream "${S3_ENDPOINT##*:}" \
            --port-file "$work/link/port" --shape \
            </dev/null >"$work/link/log" 2>&1 &
        link_pid=$!
        pids+=("$link_pid")
        wait_for 10 test -s "$work/link/port" ||
            die "store-proxy did not start; see $work/link/log"
    fi
    "$f" "link: " "http://127.0.0.1:$(cat "$work/link/port")" "$link_pid" "$@"
}

# settle: write back every dirty page of the machine, untimed, so that a
# timing never pays for an earlier step's writeback (1 GiB copies leave
# seconds of it, which slows every fsync).
settle ()
{
    sync
}

# prune NAME EXPORT: delete every snapshot of EXPORT but the current one,
# with its blob, so that repeated publishes do not fill the disk (the
# peers delete their copies too).
prune ()
{
    local sid
    for sid in $(ctl "$1" "{\"cmd\":\"snapshots\",\"export_id\":\"$2\"}" |
                     sed 's/^[^ ]* //' |
                     jq -r '.snapshots[] | select(.current | not) | .snapshot_id')
    do
        ctl_time "$1" "{\"cmd\":\"delete_snapshot\",\"export_id\":\"$2\",\"snapshot_id\":\"$sid\"}" >/dev/null
    done
}

# write_export NAME EXPORT FILE: write FILE at offset 0 of EXPORT, and
# flush, so nothing is left for the writeback to do during a timing.
write_export ()
{
    nbdcopy --flush "$3" "$(uri "$1" "$2")"
}

GiB=1073741824
TiB=1099511627776

# pair [SIDE...]: call "sample_SIDE I" for every SIDE (default: lazyvol
# peer) and I = 0..$runs, the order of the sides rotating from one I to
# the next (no side always goes first while the machine's state drifts).
# Each sets $sample; the values of runs 1..$runs collect in
# ${vals[SIDE]}, and for the default sides in $lazy_vals and $peer_vals.
# Run 0 is a warm-up whose values are dropped: the first run of a
# measurement finds the machine as the previous one left it (caches,
# freed memory), which favours neither side consistently, only
# whichever goes first.
declare -A vals
pair ()
{
    local i j side sides=("$@")
    [ $# -gt 0 ] || sides=(lazyvol peer)
    vals=()
    for i in $(seq 0 "$runs"); do
        for j in "${!sides[@]}"; do
            side=${sides[(i + j) % ${#sides[@]}]}
            sample=
            "sample_$side" "$i"
            [ -n "$sample" ] || die "no $side sample"
            [ "$i" = 0 ] || vals[$side]+=" $sample"
        done
    done
    lazy_vals=${vals[lazyvol]:-} peer_vals=${vals[peer]:-}
}

# read: nbdcopy of a whole resident 1 GiB export to null:, lazyvol vs the
# same bytes through nbdkit's file plugin; both files are in the page
# cache (one untimed pass each first).  Same nbdcopy flags (its defaults).
# iops reuses the two servers.
resident_pair ()
{
    [ -d "$work/rfile" ] && return 0
    use_store file
    cp --reflink=never "$(data 1024)" "$work/peer.img"
    start_file rfile "$work/peer.img"
    start_lazyvol rlazy discover=false
    ctl_time rlazy "{\"cmd\":\"create\",\"export_id\":\"r\",\"size\":$GiB}" \
        >/dev/null
    write_export rlazy r "$(data 1024)"
    nbdcopy "$(uri rfile)" null:
    nbdcopy "$(uri rlazy r)" null:
    settle
}

# read_rate URI: MiB/s of nbdcopy reading the 1 GiB export URI; its CPU
# seconds go to $work/cpu.nbdcopy (cpu_child, below).
read_rate ()
{
    local t
    t=$(now_ns)
    cpu_child "$work/cpu.nbdcopy" nbdcopy "$1" null:
    mib_per_s 1024 "$(secs_since "$t")"
}

bench_read ()
{
    resident_pair
    sample_lazyvol () { sample=$(read_rate "$(uri rlazy r)"); }
    sample_peer () { sample=$(read_rate "$(uri rfile)"); }
    pair
    row "seq read 1 GiB resident (MiB/s)" ">= 0.95x" "file plugin" \
        "$lazy_vals" "$peer_vals"
}

# fio_iops URI RW: IOPS of bench/fio-rand4k.fio.
fio_iops ()
{
    NBD_URI=$1 RW=$2 RUNTIME=5 fio --output-format=json \
        --output="$work/fio.json" "$here/fio-rand4k.fio" >/dev/null
    jq '.jobs[0].read.iops + .jobs[0].write.iops' "$work/fio.json"
}

bench_iops ()
{
    local rw
    resident_pair
    for rw in randread randwrite; do
        sample_lazyvol () { sample=$(fio_iops "$(uri rlazy r)" "$rw"); }
        sample_peer () { sample=$(fio_iops "$(uri rfile)" "$rw"); }
        pair
        row "4k $rw (IOPS)" ">= 0.95x" "file plugin" "$lazy_vals" "$peer_vals"
    done
}

# The plain uploads: upload_KIND FILE stores FILE once with a plain tool
# and sets $sample to the seconds it took, after a settle, as lazyvol's
# side settles before its publish.  cp: cp + fsync into the file store's
# file system (the previous copy deleted first, as lazyvol's side
# deletes its previous snapshot first); put: one curl PUT
# (bench/s3-curl.sh); boto3: a boto3 multipart upload
# (bench/multipart.py); both to the current S3 endpoint ($s3_endpoint),
# and both delete the object again, untimed.
declare -A upload_names=([cp]="cp+fsync" [put]="curl PUT" [boto3]="boto3")
upload_cp ()
{
    local t
    mkdir -p "$work/peer"
    rm -f "$work/peer/copy"
    settle
    t=$(now_ns)
    cp --reflink=never "$1" "$work/peer/copy"
    sync "$work/peer/copy"
    sample=$(secs_since "$t")
}

upload_put ()
{
    settle
    sample=$(S3_ENDPOINT=$s3_endpoint "$here/s3-curl.sh" put "$1" \
                 bench/upload)
}

upload_boto3 ()
{
    settle
    sample=$(S3_ENDPOINT=$s3_endpoint "$PY" "$here/multipart.py" "$1" \
                 bench/upload)
}

# publish: D dirty MiB (written and flushed before the timing), then a
# snapshot, timed as the control request; the previous snapshot is then
# deleted, as the peers delete their copies.  publish_pass PREFIX
# ENDPOINT PROXY-PID STORE: the rows of STORE (file, or s3 at ENDPOINT),
# labelled with PREFIX; on the file store against cp + fsync, on S3
# against a curl PUT and boto3, all three interleaved.
publish_pass ()
{
    local prefix=$1 store=$4 d name=pub-$4${1:+-link} id=p${1:+l}
    local uploads=(put boto3)
    use_store "$store" "$2"
    [ "$store" = s3 ] || uploads=(cp)
    start_lazyvol "$name" discover=false
    ctl_time "$name" \
        "{\"cmd\":\"create\",\"export_id\":\"$id\",\"size\":$((2 * GiB))}" \
        >/dev/null
    for d in 256 1024; do
        sample_lazyvol ()
        {
            write_export "$name" "$id" "$(data "$d")"
            prune "$name" "$id"
            settle
            sample=$(ctl_time "$name" "{\"cmd\":\"snapshot\",\"export_id\":\"$id\"}")
        }
        sample_cp () { upload_cp "$(data "$d")"; }
        sample_put () { upload_put "$(data "$d")"; }
        sample_boto3 () { upload_boto3 "$(data "$d")"; }
        pair lazyvol "${uploads[@]}"
        row "${prefix}publish $d MiB, $store store (s)" "<= 1.2x" \
            "${upload_names[${uploads[0]}]}" "${vals[lazyvol]}" \
            "${vals[${uploads[0]}]}"
        [ "$store" = file ] ||
            row "  same vs boto3 (s)" "<= 1.0x" boto3 "${vals[lazyvol]}" \
                "${vals[boto3]}"
    done
    stop_server "$name"
    rm -rf "$work/peer"
}

bench_publish ()
{
    publish_pass "" "" "" file
    if [ -z "$s3_why" ]; then
        use_store s3
        each_link publish_pass s3
    else
        skip "publish 256/1024 MiB, s3 store (s)" "$s3_why"
    fi
}

# sparse and clone: two lazyvol processes, one with a 1 TiB export and
# one with a 1 GiB export, each with the same 8 dirty MiB.  A publish
# costs O(dirty) and a clone O(manifest), so both should take the same
# time.  Here the "peer" is the 1 GiB export.  The state of 262144 chunks
# is a few bitmaps of 32 KiB, so the 1 TiB process's peak RSS must stay
# within what any process needs (libraries, nbdkit's request buffers, 5
# upload parts of 8 MiB): < 128 MiB, where state of even one byte per
# 4 KiB of image would take 256 MiB.  Peak RSS varies by a few tens of
# MiB with thread scheduling (malloc arenas), so it is not compared as a
# ratio.
sized_pair ()
{
    local name size
    [ -d "$work/tib" ] && return 0
    use_store file
    for name in tib gib; do
        [ $name = tib ] && size=$TiB || size=$GiB
        start_lazyvol "$name" discover=false
        ctl_time "$name" \
            "{\"cmd\":\"create\",\"export_id\":\"$name\",\"size\":$size}" \
            >/dev/null
        write_export "$name" "$name" "$(data 8)"
        ctl_time "$name" "{\"cmd\":\"snapshot\",\"export_id\":\"$name\"}" \
            >/dev/null
    done
}

# publish_8m NAME: 8 dirty MiB on export NAME of server NAME, published.
publish_8m ()
{
    write_export "$1" "$1" "$(data 8)"
    settle
    sample=$(ctl_time "$1" "{\"cmd\":\"snapshot\",\"export_id\":\"$1\"}")
}

bench_sparse ()
{
    sized_pair
    sample_lazyvol () { publish_8m tib; }
    sample_peer () { publish_8m gib; }
    pair
    row "publish 8 MiB of 1 TiB sparse (s)" "< 1 s" "1 GiB export" \
        "$lazy_vals" "$peer_vals"
    row "peak RSS, 1 TiB export (MiB)" "< 128 MiB" "1 GiB export" \
        "$(peak_rss_mib tib)" "$(peak_rss_mib gib)"
}

# clone_of NAME I: clone export NAME's current snapshot as NAME-cI.
clone_of ()
{
    settle
    sample=$(ctl_time "$1" "{\"cmd\":\"clone\",\"export_id\":\"$1-c$2\",\"source_export_id\":\"$1\"}")
}

bench_clone ()
{
    sized_pair
    sample_lazyvol () { clone_of tib "$1"; }
    sample_peer () { clone_of gib "$1"; }
    pair
    row "clone of a 1 TiB export (s)" "<= 1.5x" "1 GiB export" \
        "$lazy_vals" "$peer_vals"
}

# compact: a published 1 GiB export (all chunks resident and clean) is
# compacted: every chunk is read, hashed and uploaded into one base.blob.
# Peer: the same bytes stored by a plain tool.  Reported as throughput;
# the goal is the publish goal (<= 1.2x the time) as a ratio of rates.
compact_on ()
{
    local name=compact-$1 store=$1 upload=boto3
    use_store "$store"
    [ "$store" = s3 ] || upload="cp"
    start_lazyvol "$name" discover=false
    ctl_time "$name" "{\"cmd\":\"create\",\"export_id\":\"c\",\"size\":$GiB}" \
        >/dev/null
    write_export "$name" c "$(data 1024)"
    ctl_time "$name" '{"cmd":"snapshot","export_id":"c"}' >/dev/null
    sample_lazyvol ()
    {
        prune "$name" c
        settle
        sample=$(mib_per_s 1024 \
                     "$(ctl_time "$name" '{"cmd":"compact","export_id":"c"}')")
    }
    sample_peer ()
    {
        "upload_$upload" "$(data 1024)"
        sample=$(mib_per_s 1024 "$sample")
    }
    pair
    row "compact 1 GiB, $store store (MiB/s)" ">= 0.83x" \
        "${upload_names[$upload]}" \
        "$lazy_vals" "$peer_vals"
    stop_server "$name"
    rm -rf "$work/peer"
}

bench_compact ()
{
    compact_on file
    if [ -z "$s3_why" ]; then
        compact_on s3
    else
        skip "compact 1 GiB, s3 store (MiB/s)" "$s3_why"
    fi
}

# CPU accounting of the cold reads.  cpu_ticks PID...: the CPU time
# (user + system) processes PID... have used so far, in clock ticks
# (/proc/PID/stat, fields 14 and 15); 0 for no PID.
cpu_ticks ()
{
    local pid stats=()
    [ $# -gt 0 ] || { echo 0; return 0; }
    for pid; do
        stats+=("/proc/$pid/stat")
    done
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%d\n", t }' \
        "${stats[@]}"
}

# cpu_secs TICKS: clock ticks as seconds.
cpu_secs ()
{
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f\n", t / hz }'
}

# cpu_child FILE CMD...: run CMD; write to FILE the CPU seconds (user +
# system) of CMD and of every process it waited for (bash's "times" in a
# subshell that runs CMD alone).
cpu_child ()
{
    local f=$1
    shift
    ( "$@"; times > "$f.times" )
    awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, p, "m")
                                              s += p[1] * 60 + p[2] }
                   printf "%.3f\n", s }' "$f.times" > "$f"
}

# publish_export NAME EXPORT CHUNK-SIZE: on lazyvol NAME, a new 1 GiB
# export EXPORT of chunks of CHUNK-SIZE bytes, written with the random
# 1 GiB and published; prints the key of its blob.
publish_export ()
{
    local sid
    ctl_time "$1" "{\"cmd\":\"create\",\"export_id\":\"$2\",\"size\":$GiB,\"chunk_size\":$3}" \
        >/dev/null
    write_export "$1" "$2" "$(data 1024)"
    sid=$(ctl "$1" "{\"cmd\":\"snapshot\",\"export_id\":\"$2\"}" |
              sed 's/^[^ ]* //' | jq -r .snapshot_id)
    echo "exports/$2/snapshots/$sid/delta.blob"
}

# s3backer, the FUSE peer of the cold read: s3backer_start NAME ENDPOINT
# [OPTION...] mounts the bucket's blocks under "s3backer/" (4 MiB blocks,
# as lazyvol's chunks, 1 GiB; s3backer's defaults otherwise, and its
# default region, us-east-1, the fixture's: given --region, s3backer
# 1.5.4 asks for virtual-host bucket names, test.127.0.0.1) on
# $work/NAME/mnt, with $work/NAME/pid like a server's; stop_server
# unmounts it (FUSE's SIGTERM handler), after its dirty blocks are
# written.  Its access file splits "ID:KEY" at the first ':', and the
# fixture's access key has one, so the (throw-away) credentials are
# given on its command line.  Its blocks are written once, untimed, by
# s3backer_fill; a new process, with an empty block cache and a new
# mount (an empty page cache for the file), reads them.
s3backer_why=
s3backer_start ()
{
    local d=$work/$1 endpoint=$2
    shift 2
    mkdir -p "$d/mnt"
    s3backer -f --accessId="$AWS_ACCESS_KEY_ID" \
        --accessKey="$AWS_SECRET_ACCESS_KEY" --baseURL="$endpoint/" \
        --blockSize=4M --size=1G --prefix=s3backer/ "$@" "$S3_BUCKET" \
        "$d/mnt" </dev/null >"$d/log" 2>&1 &
    srv_pid=$!
    pids+=("$srv_pid")
    echo "$srv_pid" > "$d/pid"
    wait_for 60 eval "test -f '$d/mnt/file' || ! kill -0 $srv_pid" &&
        kill -0 "$srv_pid" 2>/dev/null ||
        die "s3backer ($1) did not mount; see $d/log"
}

s3backer_fill ()
{
    if ! command -v s3backer >/dev/null; then
        s3backer_why="s3backer is not installed (Debian: s3backer)"
        return 0
    elif [ ! -c /dev/fuse ]; then
        s3backer_why="no /dev/fuse"
        return 0
    fi
    s3backer_start s3backer-w "$S3_ENDPOINT"
    dd if="$(data 1024)" of="$work/s3backer-w/mnt/file" bs=4M \
        conv=notrunc,fsync status=none
    stop_server s3backer-w
}

# cold_read SIDE I SERVER-PID CMD...: run CMD, which reads the cold GiB,
# and set $sample to its MiB/s.  For I > 0 it also adds to
# ${cpu[SIDE PROCESS]} the CPU seconds (user + system) spent meanwhile
# by Swift's servers, the proxy ($proxy, if any), the server SERVER-PID
# (if any: nbdkit, s3backer) and CMD with every process it waited for
# (cpu_child).  Uses cold_pass's $swift, $proxy and $endpoint.
cold_read ()
{
    local side=$1 i=$2 server=$3 t=() t0
    shift 3
    t=("$(cpu_ticks $swift)" "$(cpu_ticks $proxy)" "$(cpu_ticks $server)")
    t0=$(now_ns)
    S3_ENDPOINT=$endpoint cpu_child "$work/cpu.client" "$@" >/dev/null
    sample=$(mib_per_s 1024 "$(secs_since "$t0")")
    [ "$i" != 0 ] || return 0
    cpu[$side swift]+=" $(cpu_secs $(( $(cpu_ticks $swift) - t[0] )))"
    cpu[$side proxy]+=" $(cpu_secs $(( $(cpu_ticks $proxy) - t[1] )))"
    cpu[$side server]+=" $(cpu_secs $(( $(cpu_ticks $server) - t[2] )))"
    cpu[$side client]+=" $(cat "$work/cpu.client")"
}

# zip OP "A..." "B...": the values of two lists taken pairwise, combined
# with OP (max or sum).
zip ()
{
    awk -v op="$1" -v a="$2" -v b="$3" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++)
            printf "%s%s", (i > 1 ? " " : ""),
                (op == "max" ? (x[i] > y[i] ? x[i] : y[i]) : x[i] + y[i])
        print "" }'
}

# baseline KEY DIR: the CPU baseline of a cold read: one curl GET of the
# whole object into a file in DIR, then its SHA-256 with OpenSSL, as
# lazyvol computes it (coreutils' sha256sum uses no SHA instructions:
# four times the CPU here, which would make the baseline a loose one).
baseline ()
{
    "$here/s3-curl.sh" get "$1" $GiB $GiB 1 "$2"
    openssl dgst -sha256 "$2/part.0" >/dev/null
}

# cold: one lazyvol process publishes a 1 GiB export to S3 and stops
# (and s3backer writes its own copy); with --link all of the cold rows
# run twice (each_link).  See cold_pass.
bench_cold ()
{
    local key
    if [ -n "$s3_why" ]; then
        skip "cold seq read 1 GiB from S3 (MiB/s)" "$s3_why"
        skip "peak RSS, cold read 1 GiB (MiB)" "$s3_why"
        return 0
    fi
    use_store s3
    start_lazyvol cold-w discover=false
    key=$(publish_export cold-w cold 4194304)
    stop_server cold-w
    s3backer_fill
    each_link cold_pass "$key"
}

# cold_pass PREFIX ENDPOINT PROXY-PID KEY: the cold rows, labelled with
# PREFIX, reading blob KEY from S3 at ENDPOINT (Swift's, or the proxy's,
# PROXY-PID, whose CPU is counted too).  Each run, in rotating order:
# a new lazyvol process with an empty cache read by nbdcopy (and its
# peak RSS); the raw downloaders, one curl process each throwing the
# bytes away: 8 GETs of an eighth each at once ("whole"), and 16 at a
# time of 8 MiB ranges ("ranged"), the better of the two per run being
# the peer; nbdkit's S3 plugin serving KEY, read by nbdcopy the same
# way; s3backer's file of its own copy, read by nbdcopy; and the CPU
# baseline (see baseline).
declare -A cold_names=([whole]="8 x 1/8" [ranged]="16 x 8 MiB"
                       [plugin]="nbdkit S3" [s3backer]=s3backer
                       [baseline]=baseline)
cold_pass ()
{
    local prefix=$1 endpoint=$2 proxy=$3 key=$4 name=cold-r${1:+l}
    local rss="" swift side sides=(lazyvol whole ranged baseline)
    local plugin_why="" best
    local -A cpu=()
    swift=$(cat "$s3_dir"/run/*.pid)
    use_store s3 "$endpoint"
    nbdkit S3 --version >/dev/null 2>&1 ||
        plugin_why="nbdkit's S3 plugin is not installed (Debian: nbdkit-plugin-python)"
    [ -n "$plugin_why" ] || sides+=(plugin)
    [ -n "$s3backer_why" ] || sides+=(s3backer)
    sample_lazyvol ()
    {
        rm -rf "$work/$name"*/cache
        start_lazyvol "$name$1"
        cold_read lazyvol "$1" "$srv_pid" nbdcopy "$(uri "$name$1" cold)" null:
        [ "$1" = 0 ] || rss+=" $(peak_rss_mib "$name$1")"
        stop_server "$name$1"
    }
    sample_whole ()
    {
        cold_read whole "$1" "" "$here/s3-curl.sh" get "$key" $GiB \
            $((GiB / 8)) 8
    }
    sample_ranged ()
    {
        cold_read ranged "$1" "" "$here/s3-curl.sh" get "$key" $GiB \
            $((8 << 20)) 16
    }
    sample_plugin ()
    {
        start_server s3-plugin S3 "endpoint-url=$endpoint" \
            "bucket=$S3_BUCKET" "key=$key"
        cold_read plugin "$1" "$srv_pid" nbdcopy "$(uri s3-plugin)" null:
        stop_server s3-plugin
    }
    sample_s3backer ()
    {
        s3backer_start s3backer "$endpoint" --readOnly
        cold_read s3backer "$1" "$srv_pid" nbdcopy \
            "$work/s3backer/mnt/file" null:
        stop_server s3backer
    }
    sample_baseline ()
    {
        rm -rf "$work/baseline"
        mkdir "$work/baseline"
        cold_read baseline "$1" "" baseline "$key" "$work/baseline"
        rm -rf "$work/baseline"
    }
    pair "${sides[@]}"
    rm -rf "$work/$name"*/cache
    best=$(zip max "${vals[whole]}" "${vals[ranged]}")
    if [ -z "$prefix" ]; then
        set -- ">= 0.6x" ">= 2.5x" "-"
    else
        set -- ">= 0.8x" ">= 1.8x" ">= 1.8x"
    fi
    row "${prefix}cold seq read 1 GiB (MiB/s)" "$1" "best raw GET" \
        "${vals[lazyvol]}" "$best"
    row "  raw: 8 GETs of 1/8 (MiB/s)" "-" "8 x curl" "${vals[lazyvol]}" \
        "${vals[whole]}"
    row "  raw: 16 x 8 MiB ranges (MiB/s)" "-" "16 x curl" \
        "${vals[lazyvol]}" "${vals[ranged]}"
    if [ -z "$plugin_why" ]; then
        row "  vs nbdkit S3 plugin (MiB/s)" "$2" "nbdkit S3" \
            "${vals[lazyvol]}" "${vals[plugin]}"
    else
        skip "  vs nbdkit S3 plugin (MiB/s)" "$plugin_why"
    fi
    if [ -z "$s3backer_why" ]; then
        row "  vs s3backer, FUSE (MiB/s)" "$3" "s3backer" \
            "${vals[lazyvol]}" "${vals[s3backer]}"
    else
        skip "  vs s3backer, FUSE (MiB/s)" "$s3backer_why"
    fi
    row "  vs curl file + SHA-256 (MiB/s)" "-" "baseline" \
        "${vals[lazyvol]}" "${vals[baseline]}"
    row "${prefix}peak RSS, cold read (MiB)" "< 320 MiB" "" "$rss" ""
    row "  CPU s/GiB, lazyvol's nbdkit (s)" "<= 1.5x" "baseline" \
        "${cpu[lazyvol server]}" "${cpu[baseline client]}"
    row "  CPU s/GiB, nbdcopy (s)" "-" "" "${cpu[lazyvol client]}" ""
    row "  CPU s/GiB, Swift (s)" "-" "for baseline" "${cpu[lazyvol swift]}" \
        "${cpu[baseline swift]}"
    [ -z "$proxy" ] ||
        row "  CPU s/GiB, store-proxy (s)" "-" "for baseline" \
            "${cpu[lazyvol proxy]}" "${cpu[baseline proxy]}"
    for side in "${sides[@]:1}"; do
        row "  CPU s/GiB, reader: ${cold_names[$side]} (s)" "-" \
            "${cold_names[$side]}" \
            "$(zip sum "${cpu[lazyvol server]}" "${cpu[lazyvol client]}")" \
            "$(zip sum "${cpu[$side server]}" "${cpu[$side client]}")"
    done
}

# rand: cold 4 KiB random reads, 32 in flight on one NBD connection
# (bench/randread.py), of 1 GiB exports of 4 MiB and of 64 KiB chunks,
# each run from a new lazyvol process with an empty cache.  Every read
# is in a chunk of its own, drawn at random (rand_offsets), so every
# read is a miss; the process's resident chunks afterwards count the
# chunks it fetched.  Peer: one curl process fetching each of the same
# chunks with a ranged GET of the chunk, 32 at a time.  IOPS = reads /
# seconds.  With --link, all of it again through the shaped link.
bench_rand ()
{
    local k4m k64k
    if [ -n "$s3_why" ]; then
        skip "cold rand QD32 (IOPS)" "$s3_why"
        return 0
    fi
    use_store s3
    start_lazyvol rand-w discover=false
    k4m=$(publish_export rand-w r4m 4194304)
    k64k=$(publish_export rand-w r64k 65536)
    stop_server rand-w
    each_link rand_pass r4m "$k4m" 4194304 "4 MiB" 256
    each_link rand_pass r64k "$k64k" 65536 "64 KiB" 4096
}

# rand_offsets I CHUNK-SIZE COUNT: COUNT distinct chunks of the 1 GiB
# image drawn at random (seeded by I, so that both sides of run I read
# the same), their starts into $work/offsets.chunks and a 4 KiB-aligned
# offset inside each into $work/offsets.
rand_offsets ()
{
    awk -v seed="$1" -v chunk="$2" -v count="$3" -v n=$((GiB / $2)) \
        -v chunks="$work/offsets.chunks" 'BEGIN {
        srand(seed + 1)
        for (i = 0; i < n; i++) p[i] = i
        for (i = 0; i < count; i++) {
            j = i + int(rand() * (n - i)); t = p[i]; p[i] = p[j]; p[j] = t
            print p[i] * chunk > chunks
            print p[i] * chunk + int(rand() * chunk / 4096) * 4096
        } }' > "$work/offsets"
}

# rand_pass PREFIX ENDPOINT PROXY-PID EXPORT KEY CHUNK-SIZE WHAT COUNT:
# the rows of export EXPORT (blob KEY) read COUNT times at ENDPOINT.
rand_pass ()
{
    local prefix=$1 endpoint=$2 proxy=$3 id=$4 key=$5 chunk=$6 what=$7
    local count=$8 name=rand-r${1:+l} fetched="" swift l_cpu="" p_cpu=""
    local l_swift="" p_swift=""
    swift=$(cat "$s3_dir"/run/*.pid)
    use_store s3 "$endpoint"
    # rand_cpu VAR-READER VAR-SWIFT T0 T1 T2: add the CPU seconds per GiB
    # fetched since ticks T0 (Swift), T1 (a server) and the reader's.
    rand_cpu ()
    {
        local gib=$((count * chunk)) r s
        r=$(awk -v a="$(cpu_secs $(( $(cpu_ticks $server) - $4 )))" \
                -v b="$(cat "$work/cpu.client")" -v g=$gib \
                'BEGIN { printf "%.3f", (a + b) * 1073741824 / g }')
        s=$(awk -v a="$(cpu_secs $(( $(cpu_ticks $swift) - $3 )))" -v g=$gib \
                'BEGIN { printf "%.3f", a * 1073741824 / g }')
        printf -v "$1" '%s %s' "${!1}" "$r"
        printf -v "$2" '%s %s' "${!2}" "$s"
    }
    sample_lazyvol ()
    {
        local secs t=() server
        rand_offsets "$1" "$chunk" "$count"
        rm -rf "$work/$name/cache"
        start_lazyvol "$name"
        server=$srv_pid
        t=("$(cpu_ticks $swift)" "$(cpu_ticks $server)")
        cpu_child "$work/cpu.client" "$PY" "$here/randread.py" \
            "$(uri "$name" "$id")" "$work/offsets" 32 > "$work/rand.secs"
        sample=$(mib_per_s "$count" "$(cat "$work/rand.secs")")
        if [ "$1" != 0 ]; then
            rand_cpu l_cpu l_swift "${t[0]}" "${t[1]}"
            fetched+=" $(ctl "$name" "{\"cmd\":\"status\",\"export_id\":\"$id\"}" |
                          sed 's/^[^ ]* //' |
                          jq ".resident_chunks / $count")"
        fi
        stop_server "$name"
    }
    sample_peer ()
    {
        local t=() server=""
        rand_offsets "$1" "$chunk" "$count"
        t=("$(cpu_ticks $swift)" 0)
        S3_ENDPOINT=$endpoint cpu_child "$work/cpu.client" \
            "$here/s3-curl.sh" get-list "$key" "$chunk" 32 \
            "$work/offsets.chunks" > "$work/rand.secs"
        sample=$(mib_per_s "$count" "$(cat "$work/rand.secs")")
        [ "$1" = 0 ] || rand_cpu p_cpu p_swift "${t[0]}" "${t[1]}"
    }
    pair
    rm -rf "$work/$name/cache"
    row "${prefix}cold rand QD32, $what (IOPS)" ">= 0.9x" "32 x curl GET" \
        "$lazy_vals" "$peer_vals"
    row "  chunks fetched per read" "-" "" "$fetched" ""
    row "  CPU s/GiB fetched, reader (s)" "-" "32 x curl GET" \
        "${l_cpu# }" "${p_cpu# }"
    row "  CPU s/GiB fetched, Swift (s)" "-" "for curl" "${l_swift# }" \
        "${p_swift# }"
}

echo "lazyvol bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs," \
     "$(uname -r), $(nbdkit --version)"
echo "plugin: $plugin"
echo "scratch: $work; runs: $runs; S3: ${s3_why:-Swift (tests/s3-server.sh)}"
echo
print_header
t_start=$(now_ns)
for m in "${selected[@]}"; do
    "bench_$m"
done
for n in rfile rlazy tib gib; do
    stop_server "$n"
done

echo
echo "Summary ($runs runs each; median ±half the range; ratio = lazyvol/peer"
echo "of the medians, best = of the best runs):"
print_header
while IFS= read -r line; do
    print_row "$line"
done < "$results"
echo
echo "bench: done in $(printf '%.0f' "$(secs_since "$t_start")") s"
