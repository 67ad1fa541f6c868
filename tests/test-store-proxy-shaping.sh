#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# tests/store-proxy's link shaping makes the local Swift look like a
# remote store (bench/run.sh --link reads through it), so it must hold
# what it promises, measured with curl through it:
#  - first-byte-ms N: a GET's first byte comes no sooner than N ms after
#    the GET was sent, on a new connection and on a kept one alike, and
#    the body is the object, byte for byte;
#  - conn-rate R: 64 MiB on one connection take at least 64 MiB / R, less
#    the bucket's burst (4 ticks of 10 ms: 2.10 - 0.04 s at 32 MB/s), and
#    arrive exact (SHA-256);
#  - total-rate R: two connections reading 32 MiB each at once take at
#    least 64 MiB / R less the burst: the cap is shared, not per
#    connection; each gets its bytes exact;
#  - an upload is paced too (its body, at conn-rate), the SHA-256 check
#    still passes, and the object lands whole;
#  - --shape sets the defaults; the settings change at run time on the
#    control socket, bad values are refused and change nothing; a fault
#    still happens on a shaped link, and the client copes.
# Only lower bounds on times: a loaded machine is slow, never too fast.
. "$srcdir/functions.sh"
requires curl sha256sum head dd awk
start_s3
tmp=$(make_tmpdir)

st () { proxy_store_tool "$@"; }
direct () { s3_store_tool "$@"; }
ms () { now_ms; }
# at_least VALUE BOUND: VALUE >= BOUND (decimals).
at_least () { awk -v v="$1" -v b="$2" 'BEGIN { exit !(v >= b) }'; }
sha () { sha256sum "$1" | awk '{ print $1 }'; }
part () { dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }

# The credentials reach curl in a netrc file, never on the trace.
{ set +x; } 2>/dev/null
( umask 077
  printf 'machine 127.0.0.1 login %s password %s\n' \
         "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$tmp/netrc" )
set -x
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# url KEY: the object KEY through the proxy.
url () { echo "$proxy_url/$S3_BUCKET/$1"; }
# fetch CURL-ARGS...: SigV4 GETs with curl (-o FILE URL..., one
# connection); prints "FIRST-BYTE TOTAL" seconds per object.
fetch ()
{
    curl --silent --show-error --fail --netrc-file "$tmp/netrc" \
         --aws-sigv4 "aws:amz:$S3_REGION:s3" \
         -H "x-amz-content-sha256: $empty_sha256" \
         -w '%{time_starttransfer} %{time_total}\n' "$@"
}

head -c 100000 /dev/urandom > "$tmp/small"
head -c 64M /dev/urandom > "$tmp/big"
head -c 16M /dev/urandom > "$tmp/up"
direct put small "$tmp/small" >/dev/null
direct upload big "$tmp/big" 8M >/dev/null

# --- first-byte-ms: two GETs on one connection, each held 300 ms.
start_store_proxy "$tmp/p" --first-byte-ms 300
fetch -o "$tmp/got1" "$(url small)" -o "$tmp/got2" "$(url small)" > "$tmp/times"
[ "$(wc -l < "$tmp/times")" = 2 ]
while read -r first total; do
    at_least "$first" 0.3 || fail "first byte after $first s, want >= 0.3"
done < "$tmp/times"
cmp "$tmp/got1" "$tmp/small"
cmp "$tmp/got2" "$tmp/small"
[ "$(proxy_stat connections)" = 1 ] && [ "$(proxy_stat requests)" = 2 ]

# --- conn-rate, set at run time: 64 MiB at 32 MB/s.
proxy_ctl set first-byte-ms 0
proxy_ctl set conn-rate 32M
times=$(fetch -o "$tmp/got" "$(url big)")
read -r first total <<< "$times"
at_least "$total" 1.9 || fail "64 MiB at 32 MB/s in $total s"
[ "$(sha "$tmp/got")" = "$(sha "$tmp/big")" ]

# --- total-rate: two connections of 32 MiB each at once, 32 MB/s in all.
proxy_ctl set conn-rate 0
proxy_ctl set total-rate 32M
conns=$(proxy_stat connections)
t0=$(ms)
fetch -r 0-33554431 -o "$tmp/a" "$(url big)" > "$tmp/ta" &
pa=$!
fetch -r 33554432-67108863 -o "$tmp/b" "$(url big)" > "$tmp/tb" &
pb=$!
wait "$pa"
wait "$pb"
at_least $(( $(ms) - t0 )) 1900 || fail "2 x 32 MiB at 32 MB/s in all too soon"
[ "$(proxy_stat connections)" = $(( conns + 2 )) ]
[ "$(sha "$tmp/a")" = "$(part "$tmp/big" 0 33554432 | sha /dev/stdin)" ]
[ "$(sha "$tmp/b")" = "$(part "$tmp/big" 33554432 33554432 | sha /dev/stdin)" ]

# --- an upload at 16 MB/s: its body is paced, checked, and lands whole.
proxy_ctl set total-rate 0
proxy_ctl set conn-rate 16M
t0=$(ms)
st put up "$tmp/up" >/dev/null
at_least $(( $(ms) - t0 )) 950 || fail "16 MiB up at 16 MB/s too soon"
[ "$(proxy_stat sha256-mismatch)" = 0 ]
direct get up | cmp - "$tmp/up"

# --- a fault on a shaped link: a truncated reply, retried, read whole.
proxy_ctl once truncate
st --stats get small 2>"$tmp/err" | cmp - "$tmp/small"
[ "$(proxy_stat truncate)" = 1 ]
grep -q '^retry get cut_off 1$' "$tmp/err"

# --- bad values are refused, and the rate stays.
for bad in "conn-rate 12X" "conn-rate -1" "conn-rate M" "total-rate 2000G" \
           "first-byte-ms 3600001" "first-byte-ms 1.5"; do
    # shellcheck disable=SC2086
    proxy_ctl set $bad 2>"$tmp/err" && fail "set $bad was taken"
    grep -q '^store-proxy ctl: error: ' "$tmp/err"
done
t0=$(ms)
st get up | cmp - "$tmp/up"
at_least $(( $(ms) - t0 )) 950 || fail "the bad values changed conn-rate"

# --- --shape: the defaults, a first byte after 30 ms at least.
start_store_proxy "$tmp/s" --shape
times=$(fetch -o "$tmp/got" "$(url small)")
read -r first total <<< "$times"
at_least "$first" 0.03 || fail "--shape: first byte after $first s"
cmp "$tmp/got" "$tmp/small"
"$STORE_PROXY" --help | matches -- '--first-byte-ms 30 --conn-rate 100M --total-rate 400M'
echo OK
