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
#            and vs a boto3 multipart upload and one curl PUT (S3)
#   sparse   snapshot of 8 dirty MiB of a 1 TiB export (and its peak RSS)
#   clone    clone of a 1 TiB export vs clone of a 1 GiB export
#   compact  compact of a 1 GiB export vs cp+fsync / boto3 upload
#   cold     cold sequential read of 1 GiB from S3 vs parallel ranged curl
#            (and the reader's peak RSS, and every process's CPU time)
# S3 measurements use a local Swift (tests/s3-server.sh); without it
# they are listed as skipped.  bench/README explains every row.
#
# Options:
#   --plugin PATH   the plugin (default: _build/plugin/.libs/... of this tree)
#   --scratch DIR   where the scratch directory is made (default /var/tmp);
#                   it needs about 8 GiB and is removed at the end
#   --runs N        repetitions of each measurement (default 3); the table
#                   shows medians and the spread (half the range, in %)
#   --keep          keep the scratch directory (logs, stores, and "raw":
#                   every run's value of every row)
#   --no-s3         skip the S3 measurements
#   --link          run the cold rows twice: on bare loopback, then through
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
# (its logs say why), removed otherwise.  Timings are printed, never asserted: the machine may
# be shared, so peers are measured in the same run, interleaved.
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
all="read iops publish sparse clone compact cold"
selected=()

die ()
{
    echo "bench: $*" >&2
    exit 1
}

usage ()
{
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
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
if $link && wants cold; then
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
# (for lazyvol) cache/ and ctl.sock.  start_* sets $srv_pid.
start_server ()
{
    local name=$1 d=$work/$1
    shift
    mkdir -p "$d"
    rm -f "$d/nbd.sock"
    nbdkit -f -U "$d/nbd.sock" "$@" </dev/null >"$d/log" 2>&1 &
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

# The stores.  use_store file|s3 sets $store_args (plugin parameters) and
# exports the S3 credentials for the plugin, boto3 and curl.
store_args=()
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
                export S3_ENDPOINT S3_BUCKET S3_REGION
            fi
            store_args=(storage-backend=s3 "bucket=$S3_BUCKET"
                        "endpoint-url=$S3_ENDPOINT" "region=$S3_REGION")
            ;;
    esac
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

# pair: call "sample_lazyvol I" and "sample_peer I" for I = 0..$runs, in
# alternating order (neither side always goes first while the machine's
# state drifts).  Each sets $sample; the values of runs 1..$runs collect
# in $lazy_vals and $peer_vals.  Run 0 is a warm-up whose values are
# dropped: the first run of a measurement finds the machine as the
# previous one left it (caches, freed memory), which favours neither side
# consistently, only whichever goes first.
pair ()
{
    local i side
    lazy_vals="" peer_vals=""
    for i in $(seq 0 "$runs"); do
        if [ $((i % 2)) = 1 ]; then set -- lazyvol peer; else set -- peer lazyvol; fi
        for side in "$@"; do
            sample=
            "sample_$side" "$i"
            [ -n "$sample" ] || die "no $side sample"
            if [ "$i" = 0 ]; then
                continue
            elif [ $side = lazyvol ]; then
                lazy_vals+=" $sample"
            else
                peer_vals+=" $sample"
            fi
        done
    done
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

# The plain uploads.  peer_upload FILE: store FILE once on the current
# store with a plain tool and set $sample to the seconds it took: cp +
# fsync into the file store's file system (the previous copy is deleted
# first, as lazyvol's side deletes its previous snapshot first), or a
# boto3 multipart upload (bench/multipart.py) to the same S3, or with
# $peer = curl one curl PUT of the whole file (bench/put.sh).
peer_upload ()
{
    local t
    if [ "${peer:-}" = curl ]; then
        peer_name="curl PUT"
        sample=$("$here/put.sh" "$1" "bench/upload")
    elif [ "$store" = file ]; then
        peer_name="cp+fsync"
        mkdir -p "$work/peer"
        rm -f "$work/peer/copy"
        settle
        t=$(now_ns)
        cp --reflink=never "$1" "$work/peer/copy"
        sync "$work/peer/copy"
        sample=$(secs_since "$t")
    else
        peer_name="boto3"
        sample=$("$PY" "$here/multipart.py" "$1" "bench/upload")
    fi
}

# publish: D dirty MiB (written and flushed before the timing), then a
# snapshot, timed as the control request; the previous snapshot is then
# deleted, as the peer deletes its copy.
publish_on ()
{
    local d name=pub-$1 peer
    store=$1
    use_store "$store"
    start_lazyvol "$name" discover=false
    ctl_time "$name" \
        "{\"cmd\":\"create\",\"export_id\":\"p\",\"size\":$((2 * GiB))}" \
        >/dev/null
    for d in 256 1024; do
        sample_lazyvol ()
        {
            write_export "$name" p "$(data "$d")"
            prune "$name" p
            settle
            sample=$(ctl_time "$name" '{"cmd":"snapshot","export_id":"p"}')
        }
        sample_peer () { peer_upload "$(data "$d")"; }
        # The goals: 1.2x a plain copy or a single PUT, which need no
        # hash and no manifest; no slower than boto3's multipart upload.
        for peer in $([ "$store" = s3 ] && echo "boto3 curl" || echo cp); do
            pair
            row "publish $d MiB, $store store (s)" \
                "$([ "$peer" = boto3 ] && echo "<= 1.0x" || echo "<= 1.2x")" \
                "$peer_name" "$lazy_vals" "$peer_vals"
        done
    done
    stop_server "$name"
    rm -rf "$work/peer"
}

bench_publish ()
{
    publish_on file
    if [ -z "$s3_why" ]; then
        publish_on s3
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
    local name=compact-$1
    store=$1
    use_store "$store"
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
        peer_upload "$(data 1024)"
        sample=$(mib_per_s 1024 "$sample")
    }
    pair
    row "compact 1 GiB, $store store (MiB/s)" ">= 0.83x" "$peer_name" \
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

# cold: one lazyvol process publishes a 1 GiB export to S3 and stops;
# each run, a new process with an empty cache reads it all with nbdcopy
# (its peak RSS is recorded too).  Peer: the same blob fetched with
# ranged GETs of one chunk each, 8 at a time, by one curl process
# (bench/ranged-get.sh), as readahead keeps 8 chunks in flight; the bytes
# are thrown away.  A second, informational peer writes them to files,
# as lazyvol writes its cache: the difference between the two peers is
# the cost of putting a GiB in the page cache.  Each side deletes the
# previous run's bytes just before its turn (see prune).  Every transfer
# also records the CPU time each process spent on it: Swift's servers,
# the reader (lazyvol's nbdkit and nbdcopy, or the peer's script and its
# curl) and, on the link, tests/store-proxy.  With --link all of it runs
# twice: on bare loopback, then through the proxy's shaped link.
bench_cold ()
{
    local key sid
    if [ -n "$s3_why" ]; then
        skip "cold seq read 1 GiB from S3 (MiB/s)" "$s3_why"
        skip "peak RSS, cold read 1 GiB (MiB)" "$s3_why"
        return 0
    fi
    use_store s3
    start_lazyvol cold-w discover=false
    ctl_time cold-w "{\"cmd\":\"create\",\"export_id\":\"cold\",\"size\":$GiB}" \
        >/dev/null
    write_export cold-w cold "$(data 1024)"
    sid=$(ctl cold-w '{"cmd":"snapshot","export_id":"cold"}' |
              sed 's/^[^ ]* //' | jq -r .snapshot_id)
    stop_server cold-w
    key=exports/cold/snapshots/$sid/delta.blob
    cold_pass "$key" "$S3_ENDPOINT" cold-r "cold seq read 1 GiB from S3" \
        "peak RSS, cold read 1 GiB" ""
    if $link; then
        mkdir -p "$work/link"
        rm -f "$work/link/port"
        "$store_proxy" --upstream "${S3_ENDPOINT##*:}" \
            --port-file "$work/link/port" --shape \
            </dev/null >"$work/link/log" 2>&1 &
        link_pid=$!
        pids+=("$link_pid")
        wait_for 10 test -s "$work/link/port" ||
            die "store-proxy did not start; see $work/link/log"
        cold_pass "$key" "http://127.0.0.1:$(cat "$work/link/port")" \
            cold-l "link: cold seq read 1 GiB" "link: peak RSS, cold read" \
            "$link_pid"
        kill "$link_pid"
        wait "$link_pid" 2>/dev/null || true
        forget_pid "$link_pid"
    fi
}

# cold_pass KEY ENDPOINT NAME READ-LABEL RSS-LABEL PROXY-PID: the cold
# rows, reading blob KEY from S3 at ENDPOINT (Swift's, or the proxy's)
# with lazyvol servers NAME0..., the read and peak RSS rows labelled so;
# PROXY-PID, if any, is the proxy between, whose CPU is counted too.
cold_pass ()
{
    local key=$1 endpoint=$2 name=$3 read_label=$4 rss_label=$5 proxy=$6
    local rss="" files="" swift
    local l_swift="" l_nbdkit="" l_nbdcopy="" l_proxy="" l_all=""
    local p_swift="" p_curl="" p_proxy="" p_all="" f_curl=""
    swift=$(cat "$s3_dir"/run/*.pid)
    store_args=(storage-backend=s3 "bucket=$S3_BUCKET"
                "endpoint-url=$endpoint" "region=$S3_REGION")
    sample_lazyvol ()
    {
        local pid t=()
        rm -rf "$work/$name"*/cache
        start_lazyvol "$name$1"
        pid=$(cat "$work/$name$1/pid")
        t=("$(cpu_ticks $swift)" "$(cpu_ticks $proxy)" \
           "$(cpu_ticks "$pid")")
        sample=$(read_rate "$(uri "$name$1" cold)")
        t=("$(cpu_secs $(( $(cpu_ticks $swift) - t[0] )))"
           "$(cpu_secs $(( $(cpu_ticks $proxy) - t[1] )))"
           "$(cpu_secs $(( $(cpu_ticks "$pid") - t[2] )))"
           "$(cat "$work/cpu.nbdcopy")")
        if [ "$1" != 0 ]; then
            rss+=" $(peak_rss_mib "$name$1")"
            l_swift+=" ${t[0]}" l_proxy+=" ${t[1]}"
            l_nbdkit+=" ${t[2]}" l_nbdcopy+=" ${t[3]}"
            l_all+=" $(awk "BEGIN { print ${t[0]} + ${t[1]} + ${t[2]} + ${t[3]} }")"
        fi
        stop_server "$name$1"
    }
    sample_peer ()
    {
        local t=()
        rm -rf "$work/curl-out"
        mkdir "$work/curl-out"
        sample=$(S3_ENDPOINT=$endpoint cpu_child "$work/cpu.curl" \
                     "$here/ranged-get.sh" "$key" $GiB 4194304 8 \
                     "$work/curl-out")
        if [ "$1" != 0 ]; then
            files+=" $(mib_per_s 1024 "$sample")"
            f_curl+=" $(cat "$work/cpu.curl")"
        fi
        t=("$(cpu_ticks $swift)" "$(cpu_ticks $proxy)")
        sample=$(S3_ENDPOINT=$endpoint cpu_child "$work/cpu.curl" \
                     "$here/ranged-get.sh" "$key" $GiB 4194304 8)
        sample=$(mib_per_s 1024 "$sample")
        t=("$(cpu_secs $(( $(cpu_ticks $swift) - t[0] )))"
           "$(cpu_secs $(( $(cpu_ticks $proxy) - t[1] )))"
           "$(cat "$work/cpu.curl")")
        if [ "$1" != 0 ]; then
            p_swift+=" ${t[0]}" p_proxy+=" ${t[1]}" p_curl+=" ${t[2]}"
            p_all+=" $(awk "BEGIN { print ${t[0]} + ${t[1]} + ${t[2]} }")"
        fi
    }
    pair
    rm -rf "$work/curl-out" "$work/$name"*/cache
    row "$read_label (MiB/s)" ">= 0.7x" "8 x curl" \
        "$lazy_vals" "$peer_vals"
    row "  same, peer writes files (MiB/s)" "-" "8 x curl" "$lazy_vals" \
        "$files"
    row "$rss_label (MiB)" "< 320 MiB" "" "$rss" ""
    row "  CPU s/GiB, Swift (s)" "-" "for curl" "$l_swift" "$p_swift"
    [ -z "$proxy" ] ||
        row "  CPU s/GiB, store-proxy (s)" "-" "for curl" "$l_proxy" \
            "$p_proxy"
    row "  CPU s/GiB, nbdkit | curl (s)" "-" "8 x curl" "$l_nbdkit" "$p_curl"
    row "  CPU s/GiB, nbdkit | curl files (s)" "-" "8 x curl" "$l_nbdkit" \
        "$f_curl"
    row "  CPU s/GiB, nbdcopy (s)" "-" "" "$l_nbdcopy" ""
    row "  CPU s/GiB, all of them (s)" "-" "8 x curl" "$l_all" "$p_all"
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
