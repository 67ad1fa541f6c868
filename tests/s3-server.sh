#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A throw-away S3 store for lazyvol's tests: OpenStack Swift with its S3
# API (s3api, which checks SigV4 signatures) and tempauth, one node, bound
# to 127.0.0.1, everything under one directory.  Needs only the
# python3-swift library (Debian) and curl; never reads /etc/swift.
#
#   s3-server.sh start DIR [cond-put]   start; print the variables below
#                                       and write them to DIR/s3.env
#   s3-server.sh stop DIR               stop the servers started in DIR
#
#   S3_ENDPOINT=http://127.0.0.1:PORT  S3_REGION=us-east-1  S3_BUCKET=test
#   S3_ACCESS_KEY=test:tester  S3_SECRET_KEY=...  S3_STOP="... stop DIR"
#
# "cond-put" makes the store evaluate If-None-Match: * and If-Match on
# PUT (412 when they fail), which stock Swift 2.30 refuses with 501 (see
# s3_server.py).
#
# Four servers (proxy = the S3 endpoint, account, container, object) use
# four consecutive ports from a random base in 20000..31999, so tests can
# run in parallel; if a port turns out to be taken, a server dies at once
# and start tries another base.
set -e
set -u

PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1   # keep the source tree clean
here=$(cd "$(dirname "$0")" && pwd)
servers="account container object proxy"

die ()
{
    echo "s3-server: $*" >&2
    exit 1
}

pid_of ()
{
    cat "$1/run/$2.pid" 2>/dev/null
}

do_stop ()
{
    local dir=$1 s pid pids="" i
    for s in $servers; do
        pid=$(pid_of "$dir" "$s") || continue
        kill "$pid" 2>/dev/null && pids="$pids $pid"
        rm -f "$dir/run/$s.pid"
    done
    # Swift takes a second or two to exit after SIGTERM.
    for i in $(seq 100); do
        for pid in $pids; do
            kill -0 "$pid" 2>/dev/null || pids=${pids/ $pid/}
        done
        [ -z "$pids" ] && return 0
        sleep 0.1
    done
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || :; done
}

# configure DIR PORT [cond-put]: Swift's configuration and rings for
# ports PORT..PORT+3.
configure ()
{
    local dir=$1 port=$2 cond=${3:-} s secret i=0
    rm -rf "$dir/etc" "$dir/srv"
    mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/run" "$dir/log" "$dir/cache"
    secret=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    echo "$secret" > "$dir/etc/secret"
    cat > "$dir/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = lazyvol-test
[storage-policy:0]
name = gold
default = yes
EOF
    # The proxy (the S3 endpoint) on PORT, then the storage servers.
    for s in proxy account container object; do
        cat > "$dir/etc/$s-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $((port + i))
bind_timeout = 1
workers = 0
user = $(id -un)
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
disable_fallocate = true
recon_cache_path = $dir/cache
log_udp_host = 127.0.0.1
log_udp_port = 9
EOF
        [ $s = proxy ] || printf '%s\n' "[pipeline:main]" \
            "pipeline = $s-server" "[app:$s-server]" "use = egg:swift#$s" \
            >> "$dir/etc/$s-server.conf"
        i=$((i + 1))
    done
    cat >> "$dir/etc/proxy-server.conf" <<EOF
[pipeline:main]
pipeline = catch_errors gatekeeper proxy-logging cache s3api tempauth ${cond:+cond_put} slo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# A loaded test machine is slow, not broken: Swift's defaults (0.5 s to
# connect to a storage server, and a server that failed 10 times in a
# minute is skipped for that minute) turn a slow moment into 503s for
# every request, the only storage server being skipped.
conn_timeout = 5
node_timeout = 60
error_suppression_limit = 1000000
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
storage_domain = localhost
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $secret .admin
[filter:cache]
paste.filter_factory = s3_server:memory_cache
[filter:cond_put]
paste.filter_factory = s3_server:conditional_put
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:slo]
use = egg:swift#slo
EOF
    # One device, one replica, for each ring.
    "$PY" - "$dir/etc" "$port" <<'EOF'
import sys
from swift.common.ring import RingBuilder
etc, port = sys.argv[1], int(sys.argv[2])
for i, ring in enumerate(['account', 'container', 'object']):
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1',
                     'port': port + 1 + i, 'device': 'd1', 'weight': 1})
    builder.rebalance()
    builder.get_ring().save('%s/%s.ring.gz' % (etc, ring))
EOF
}

alive ()
{
    local s
    for s in $servers; do
        kill -0 "$(pid_of "$1" "$s")" 2>/dev/null || return 1
    done
}

# try_start DIR PORT: start the servers; wait until the S3 bucket exists.
# 1 if a server died (a port was taken, or worse: see DIR/log).
try_start ()
{
    local dir=$1 port=$2 s token code deadline=$((SECONDS + 60))
    for s in $servers; do
        "$PY" "$here/s3_server.py" "$dir" "$s" \
              </dev/null >"$dir/log/$s.log" 2>&1 &
        echo $! > "$dir/run/$s.pid"
    done
    # The bucket is a Swift container: create it with the Swift API,
    # which needs no signature, as soon as every server answers.
    while [ $SECONDS -lt $deadline ]; do
        alive "$dir" || return 1
        token=$(curl -sf -m 5 -D - -o /dev/null \
                     -H "X-Auth-User: test:tester" \
                     -H "X-Auth-Key: $(cat "$dir/etc/secret")" \
                     "http://127.0.0.1:$port/auth/v1.0" 2>/dev/null |
                    tr -d '\r' | sed -n 's/^X-Auth-Token: //ip') || token=
        if [ -n "$token" ]; then
            code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT \
                        -H "X-Auth-Token: $token" \
                        "http://127.0.0.1:$port/v1/AUTH_test/test") || :
            case $code in 201|202) return 0 ;; esac
        fi
        sleep 0.1
    done
    tail -n 5 "$dir"/log/*.log >&2
    do_stop "$dir"
    die "Swift did not answer within 60 s"
}

do_start ()
{
    local dir=$1 cond=${2:-} port tries t0 ms
    t0=$(date +%s%N)
    "$PY" -c 'import swift.common.middleware.s3api' 2>/dev/null ||
        die "python3-swift is not installed (apt-get install python3-swift)"
    command -v curl >/dev/null || die "curl is not installed"
    case $cond in ''|cond-put) ;; *) die "unknown option $cond" ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for tries in 1 2 3 4 5; do
        # Below Linux's ephemeral ports (32768 up), which clients take.
        port=$(( 20000 + RANDOM % 3000 * 4 ))
        configure "$dir" "$port" "$cond"
        try_start "$dir" "$port" && break
        do_stop "$dir"
        [ "$tries" = 5 ] && { tail -n 5 "$dir"/log/*.log >&2;
                              die "no server would start"; }
    done
    cat > "$dir/s3.env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$port
S3_ACCESS_KEY=test:tester
S3_SECRET_KEY=$(cat "$dir/etc/secret")
S3_REGION=us-east-1
S3_BUCKET=test
S3_STOP="$here/s3-server.sh stop $dir"
EOF
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "s3-server: up in $ms ms on port $port (try $tries), logs in $dir/log" >&2
    cat "$dir/s3.env"
}

case ${1:-} in
    start) [ $# -ge 2 ] || die "usage: start DIR [cond-put]"; do_start "$2" "${3:-}" ;;
    stop) [ $# -eq 2 ] || die "usage: stop DIR"; do_stop "$2" ;;
    *) die "usage: s3-server.sh start DIR [cond-put] | stop DIR" ;;
esac
