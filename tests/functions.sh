# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Shared helpers for lazyvol's shell tests.  Source it, then:
#   requires CMD...          the test fails (not skips) if a tool is missing
#   tmp=$(make_tmpdir)       a scratch directory removed at exit
#   cleanup_fn CMD ARGS...   run at exit, last registered first
#   wait_for SECONDS CMD...  retry CMD until it succeeds or time runs out
#   start_nbdkit SOCK ARGS   nbdkit with the lazyvol plugin on a Unix socket
#   start_s3 [cond-put]      a local S3 store (Swift) for this test
#   start_store_proxy DIR ARGS  tests/store-proxy (faults) in front of it
#   start_lazyvold DIR ARGS  the daemon, driven with api / api_expect (curl)
#   fail MESSAGE             print and exit 1
#   cmd | matches PATTERN    grep -q without cutting cmd short (pipefail)
#
# Every test starts with a comment saying what must hold and why.

set -e
set -u
set -o pipefail
set -x

: "${LAZYVOL_PLUGIN:?run tests through make check}"

fail ()
{
    echo "FAIL: $*" >&2
    exit 1
}

# In CI every tool is installed; a missing one is a failure, never a skip.
requires ()
{
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            fail "required tool '$c' is not installed (./check.sh installs it)"
    done
}

_cleanup_cmds=()
cleanup_fn ()
{
    _cleanup_cmds+=("$(printf '%q ' "$@")")
}

_run_cleanups ()
{
    local status=$? i
    set +e
    for (( i=${#_cleanup_cmds[@]}-1; i>=0; i-- )); do
        eval "${_cleanup_cmds[$i]}"
    done
    exit $status
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

# Scratch directories live in one per-test directory, removed at exit:
# make_tmpdir runs in a $(...) subshell, which cannot register cleanups.
_tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/lazyvol-test.XXXXXX")
cleanup_fn rm -rf "$_tmp_root"
make_tmpdir ()
{
    mktemp -d "$_tmp_root/XXXXXX"
}

# requires_crash_points: the plugin was built with --enable-crash-points
# (check.sh builds it so); the test fails otherwise.  A test then sets
# LAZYVOL_CRASH_AT=NAME[:N] (see crash_at) to kill nbdkit at a point.
requires_crash_points ()
{
    nbdkit "$LAZYVOL_PLUGIN" --dump-plugin | matches -x lazyvol_crash_points=yes ||
        fail "the plugin has no crash points: configure --enable-crash-points"
}

# crash_at POINT CMD...: run CMD (start_lazyvol ...) with nbdkit set to
# die at crash point POINT.
crash_at ()
{
    local point=$1
    shift
    LAZYVOL_CRASH_AT=$point
    export LAZYVOL_CRASH_AT
    "$@"
    unset LAZYVOL_CRASH_AT
}

# matches GREP-ARGS...: grep -q that reads all its input, so that (with
# pipefail) the command before it is never killed by SIGPIPE and its own
# exit status counts.
matches ()
{
    grep "$@" >/dev/null
}

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

# kill_wait PID: SIGTERM, then wait up to 30 s for the process to go.
kill_wait ()
{
    kill "$1" 2>/dev/null || return 0
    wait_for 30 sh -c "! kill -0 $1 2>/dev/null" ||
        { kill -9 "$1" 2>/dev/null; true; }
}

# start_nbdkit SOCK PLUGIN-ARGS...: nbdkit in the background serving the
# plugin on Unix socket SOCK; sets $nbdkit_pid and stops it at exit.
# NBDKIT_OPTS (an array, optional) holds nbdkit options such as -D flags.
start_nbdkit ()
{
    local sock=$1
    shift
    rm -f "$sock"
    nbdkit -f -U "$sock" ${NBDKIT_OPTS[@]+"${NBDKIT_OPTS[@]}"} \
        "$LAZYVOL_PLUGIN" "$@" &
    nbdkit_pid=$!
    cleanup_fn kill_wait "$nbdkit_pid"
    wait_for 30 test -S "$sock" || fail "nbdkit did not start"
}

# start_s3 [cond-put]: a throw-away S3 store for this test (s3-server.sh:
# Swift with s3api on 127.0.0.1), stopped at exit.  Exports S3_ENDPOINT,
# S3_BUCKET, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY, and the same
# credentials as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.  With
# cond-put the store evaluates If-None-Match and If-Match on PUT.
start_s3 ()
{
    local dir
    requires /usr/bin/python3 curl
    dir=$(make_tmpdir)
    cleanup_fn "$srcdir/s3-server.sh" stop "$dir"
    "$srcdir/s3-server.sh" start "$dir" "$@" >/dev/null ||
        fail "the local S3 store did not start"
    . "$dir/s3.env"
    export S3_ENDPOINT S3_BUCKET S3_REGION S3_ACCESS_KEY S3_SECRET_KEY
    export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
    export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
}

# start_store_proxy DIR [STORE-PROXY-ARGS...]: tests/store-proxy in front
# of the store of start_s3 (a fault injector: see store-proxy --help),
# with its port file, stats file, control socket and fault log in DIR;
# stopped at exit.  Sets $proxy_url (its endpoint), $proxy_pid and
# $proxy_dir.  Start another one to start afresh.
start_store_proxy ()
{
    local d=$1
    shift
    [ -n "${proxy_pid:-}" ] && kill_wait "$proxy_pid"
    mkdir -p "$d"
    rm -f "$d/port"
    "$STORE_PROXY" --upstream "${S3_ENDPOINT##*:}" --port-file "$d/port" \
        --stats "$d/stats" --control "$d/ctl.sock" --log "$d/faults.log" \
        "$@" &
    proxy_pid=$!
    proxy_dir=$d
    cleanup_fn kill_wait "$proxy_pid"
    wait_for 10 test -s "$d/port" || fail "store-proxy did not start"
    proxy_url=http://127.0.0.1:$(cat "$d/port")
}

# store_via_proxy [PARAMS...]: STORE_ARGS for the S3 store of start_s3
# reached through the last store proxy, with the plugin's PARAMS
# (retries=1 timeout=30 ...).
store_via_proxy ()
{
    STORE_ARGS=(storage-backend=s3 "bucket=$S3_BUCKET" "endpoint-url=$proxy_url" "$@")
}

# proxy_store_tool ARGS... / s3_store_tool ARGS...: store-tool on the S3
# store of start_s3, through the last store proxy / directly.
proxy_store_tool ()
{
    "$STORE_TOOL" --backend s3 --bucket "$S3_BUCKET" --endpoint-url "$proxy_url" "$@"
}
s3_store_tool ()
{
    "$STORE_TOOL" --backend s3 --bucket "$S3_BUCKET" --endpoint-url "$S3_ENDPOINT" "$@"
}

# now_ms: the time in milliseconds.
now_ms ()
{
    echo $(( $(date +%s%N) / 1000000 ))
}

# proxy_stat NAME: a counter of the last store proxy (requests, reset...).
proxy_stat ()
{
    sed -n "s/^$1 //p" "$proxy_dir/stats"
}

# proxy_ctl COMMAND...: a command to the last store proxy ("once reset").
proxy_ctl ()
{
    "$STORE_PROXY" ctl "$proxy_dir/ctl.sock" "$@"
}

# The object store the test runs against: LAZYVOL_TEST_BACKEND=file (a
# directory, default) or s3 (a local Swift that evaluates conditional
# puts, as AWS S3 and R2 do; with LAZYVOL_TEST_S3_STOCK=1 stock Swift,
# which refuses them).  start_store DIR sets STORE_ARGS, the plugin
# parameters for it, so that several nbdkit processes with different
# cache roots share one store.
start_store ()
{
    case "${LAZYVOL_TEST_BACKEND:-file}" in
        file) STORE_ARGS=(storage-backend=file "bucket=$1/bucket") ;;
        s3)
            if [ "${LAZYVOL_TEST_S3_STOCK:-0}" = 1 ]; then
                start_s3
            else
                start_s3 cond-put
            fi
            # The plugin's retries, and time: a loaded machine is slow.
            STORE_ARGS=(storage-backend=s3 "bucket=$S3_BUCKET"
                        "endpoint-url=$S3_ENDPOINT" retries=5 timeout=30)
            ;;
        *) fail "unknown LAZYVOL_TEST_BACKEND=$LAZYVOL_TEST_BACKEND" ;;
    esac
}

# start_lazyvol DIR [PLUGIN-ARGS...]: nbdkit with the plugin, cache root
# DIR/cache, NBD on DIR/nbd.sock and control on DIR/ctl.sock.  Sets
# $nbdkit_pid, $nbd (the socket) and $ctlsock.
start_lazyvol ()
{
    local d=$1
    shift
    nbd=$d/nbd.sock
    ctlsock=$d/ctl.sock
    rm -f "$ctlsock"
    start_nbdkit "$nbd" "cache-root=$d/cache" "control=$ctlsock" \
        ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} "$@"
    wait_for 30 test -S "$ctlsock" || fail "control socket did not appear"
}

# stop_lazyvol [SIGNAL]: stop the nbdkit started by start_lazyvol.
stop_lazyvol ()
{
    kill -"${1:-TERM}" "$nbdkit_pid" 2>/dev/null || true
    wait_for 60 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" ||
        fail "nbdkit did not exit"
}

# ctl JSON: send a control request to $ctlsock; the reply on stdout.
ctl ()
{
    "$abs_top_srcdir/tests/ctl.py" "$ctlsock" "$1"
}

# field JSON-TEXT KEY: print a top-level field of a JSON reply.
field ()
{
    printf '%s' "$1" | jq -r ".$2"
}

# no_clients EXPORT: does EXPORT have no NBD client left?  A client
# program that has exited may still be closing in nbdkit for a moment, so
# tests wait for this before a reset or close.
no_clients ()
{
    [ "$(ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}" | jq .connections)" = 0 ]
}

# uri EXPORT: the NBD URI of an export on $nbd.
uri ()
{
    echo "nbd+unix:///$1?socket=$nbd"
}

# store_tool ARGS...: store-tool on the test's object store (start_store).
store_tool ()
{
    case "${LAZYVOL_TEST_BACKEND:-file}" in
        file) "$STORE_TOOL" --bucket "${STORE_ARGS[1]#bucket=}" "$@" ;;
        s3) "$STORE_TOOL" --backend s3 --endpoint-url "$S3_ENDPOINT" \
                --bucket "$S3_BUCKET" "$@" ;;
    esac
}

# The daemon, driven as a user drives it: curl on the admin socket.
#
# start_lazyvold DIR [LAZYVOLD-ARGS...]: "lazyvold serve --foreground"
# with cache root DIR/cache, the store of start_store, NBD on DIR/nbd.sock
# and the admin API on DIR/admin.sock (later arguments override these),
# logging to DIR/lazyvold.log.  Returns once GET /v1/health answers 200.
# Sets $lazyvold_pid, $admin, $nbd.  At exit lazyvold is stopped, and so
# is any nbdkit it left serving.  With LAZYVOLD_DIRECT=PREFIX, direct
# mode instead: --cache-dir DIR/cache --remote-prefix PREFIX.
start_lazyvold ()
{
    local d=$1 a
    shift
    mkdir -p "$d"
    admin=$d/admin.sock
    nbd=$d/nbd.sock
    api_body=$d/api.body
    local store_flags=()
    for a in ${STORE_ARGS[@]+"${STORE_ARGS[@]}"}; do
        case ${a%%=*} in
            bucket|storage-backend|endpoint-url|region)
                store_flags+=("--${a%%=*}" "${a#*=}") ;;
            *) store_flags+=(--param "$a") ;;
        esac
    done
    local cache_flags=(--cache-root "$d/cache")
    [ -z "${LAZYVOLD_DIRECT:-}" ] ||
        cache_flags=(--cache-dir "$d/cache" --remote-prefix "$LAZYVOLD_DIRECT")
    "$LAZYVOLD" serve --foreground --plugin "$LAZYVOL_PLUGIN" \
        "${cache_flags[@]}" --listen "$nbd" --admin-sock "$admin" \
        ${store_flags[@]+"${store_flags[@]}"} "$@" >>"$d/lazyvold.log" 2>&1 &
    lazyvold_pid=$!
    cleanup_fn stop_lazyvold_at_exit "$lazyvold_pid" "$d/cache"
    wait_for 30 api_ready ||
        fail "lazyvold did not become ready: $(tail -5 "$d/lazyvold.log")"
    # Unless a test holds it, discovery ends soon after: wait for it.
    [ -n "${LAZYVOLD_TEST_HOLD_DISCOVERY:-}" ] || wait_for 120 api_discovered ||
        fail "lazyvold's discovery did not end: $(tail -5 "$d/lazyvold.log")"
}

# api_discovered: lazyvold's discovery of exports is over (or off).
api_discovered ()
{
    api_call GET /v1/health >/dev/null 2>&1 &&
        jq -e '.discovery.state |
            IN("done", "failed", "off", "adopted")' \
            "$api_body" >/dev/null
}

# stop_lazyvold [SIGNAL]: signal lazyvold (TERM) and wait until it has
# exited; its exit status goes to $lazyvold_status.
stop_lazyvold ()
{
    kill -"${1:-TERM}" "$lazyvold_pid"
    wait_for 60 sh -c "! kill -0 $lazyvold_pid 2>/dev/null" ||
        fail "lazyvold did not exit"
    lazyvold_status=0
    wait "$lazyvold_pid" || lazyvold_status=$?
}

stop_lazyvold_at_exit ()
{
    local pidfile=$2/.lazyvold/nbdkit.pid
    kill_wait "$1"
    [ -f "$pidfile" ] && kill_wait "$(cat "$pidfile")"
}

# nbdkit_pid_of DIR: the pid of the nbdkit serving cache root DIR/cache.
nbdkit_pid_of ()
{
    cat "$1/cache/.lazyvold/nbdkit.pid"
}

# api_call METHOD PATH [JSON]: one admin API request on $admin; prints
# the HTTP status, leaves the body in $api_body.
api_call ()
{
    local method=$1 path=$2
    shift 2
    curl -sS --unix-socket "$admin" -X "$method" -o "$api_body" \
        -w '%{http_code}' ${1+-H 'Content-Type: application/json'} \
        ${1+--data-binary "$1"} "http://localhost$path"
}

api_ready ()
{
    [ "$(api_call GET /v1/health 2>/dev/null)" = 200 ]
}

# api METHOD PATH [JSON]: print the response body; fail unless 2xx.
api ()
{
    local code
    code=$(api_call "$@")
    cat "$api_body"
    case $code in
        2??) ;;
        *) fail "$1 $2: HTTP $code: $(cat "$api_body")" ;;
    esac
}

# api_expect STATUS METHOD PATH [JSON]: the response has STATUS; print
# its body.
api_expect ()
{
    local want=$1 code
    shift
    code=$(api_call "$@")
    cat "$api_body"
    [ "$code" = "$want" ] ||
        fail "$1 $2: wanted HTTP $want, got $code: $(cat "$api_body")"
}

# nbd_put URI FILE OFFSET LENGTH: write bytes [OFFSET, OFFSET+LENGTH) of
# FILE to the export at the same offset, then flush.
nbd_put ()
{
    /usr/bin/python3 -c 'import nbd, sys
uri, path, off, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(path, "rb") as f:
    f.seek(off)
    data = f.read(n)
h = nbd.NBD(); h.connect_uri(uri); h.pwrite(data, off); h.flush(); h.shutdown()
' "$@"
}

# free_port: a TCP port nothing listens on now.
free_port ()
{
    /usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# api_no_clients EXPORT: no_clients through the admin API.
api_no_clients ()
{
    [ "$(api GET "/v1/exports/$1/status" | jq .connections)" = 0 ]
}
