#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# tests/store-proxy, the fault injector of the S3 tests, does what it is
# told while it runs, counts what it did, and the S3 client copes:
#  - it forwards requests and replies byte for byte, the Host header the
#    client signed included (path-style, virtual-hosted, multipart);
#  - each fault kind, asked for once on the control socket, happens once
#    (its counter and the fault log say so), and the client copes: a reply
#    reset or truncated in its body, or a 5xx, is retried and the object
#    read whole (a streamed get's consumer, which had part of the body, is
#    told to start over first, and gets it whole); a reset where the reply has no body (a put's) loses the
#    reply of a put that landed, and the retry puts it again; a delayed
#    request is answered late; a request that hangs times out and is
#    tried again; a byte flipped in a put's body fails the SHA-256 check
#    (400 XAmzContentSHA256Mismatch), and the put is sent again (a part
#    too), so the new object lands whole; on a link that damages every
#    put the tries run out and the store keeps the old object; a byte flipped in a GET reply reaches the client (the first
#    byte: its checks are test-store-metrics-s3.sh's business);
#  - random faults by probability: the same seed and the same requests
#    give the same faults, request by request, and another seed others;
#    the client reads every object whole through them.
. "$srcdir/functions.sh"
requires cmp dd head tail awk
start_s3
tmp=$(make_tmpdir)

st () { proxy_store_tool "$@"; }
direct () { s3_store_tool "$@"; }
ms () { now_ms; }
# part FILE OFFSET LEN: those bytes of FILE.
part () { dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }
# only_first_flipped GOT WANT: GOT differs from WANT in its first byte only.
only_first_flipped () { [ "$(cmp -l "$1" "$2" | awk '{ print $1 }')" = 1 ]; }
# logged KIND: the fault log's last line is a fault of KIND.
logged () { tail -n 1 "$proxy_dir/faults.log" | matches "^[0-9]* $1 "; }

head -c 300000 /dev/urandom > "$tmp/obj"
head -c 11000000 /dev/urandom > "$tmp/big"
part "$tmp/big" 1000000 2000000 > "$tmp/big.part"

# --- forwarding, byte for byte.
start_store_proxy "$tmp/p"
st put k "$tmp/obj" >/dev/null
direct get k | cmp - "$tmp/obj"
st get k | cmp - "$tmp/obj"
st upload big "$tmp/big" 5M
st get big | cmp - "$tmp/big"
st get-range big 1000000 2000000 | cmp - "$tmp/big.part"
[ "$(st head k)" = "$(direct head k)" ]
[ "$(st list '')" = "$(direct list '')" ]
st --addressing virtual --endpoint-url "http://localhost:${proxy_url##*:}" \
   get k | cmp - "$tmp/obj"
[ "$(proxy_stat requests)" = "$(proxy_stat forwarded)" ]
[ "$(proxy_stat sha256-mismatch)" = 0 ]
[ ! -s "$proxy_dir/faults.log" ]

# --- each fault once, on command.
# A reply reset in its body: retried, read whole.
proxy_ctl once reset
st --stats get k 2>"$tmp/err" | cmp - "$tmp/obj"
[ "$(proxy_stat reset)" = 1 ] && logged reset
grep -q '^retry get cut_off 1$' "$tmp/err"

# A body that stops short of its Content-Length, on a ranged get.
proxy_ctl once truncate
st --stats get-range big 1000000 2000000 2>"$tmp/err" | cmp - "$tmp/big.part"
[ "$(proxy_stat truncate)" = 1 ] && logged truncate
grep -q '^retry get_range cut_off 1$' "$tmp/err"

# The same cuts in a streamed get: the consumer had part of the body
# when it was told to start over, and got the object whole.
for kind in truncate reset; do
    proxy_ctl once $kind
    st --stats get-stream k 2>"$tmp/err" | cmp - "$tmp/obj"
    [ "$(proxy_stat $kind)" = 2 ] && logged $kind
    grep -q '^restart after [1-9][0-9]* bytes$' "$tmp/err"
    [ "$(grep -c '^restart' "$tmp/err")" = 1 ]
    grep -q '^retry get cut_off 1$' "$tmp/err"
done

# A 500 in place of the store's reply: retried as a server error.
proxy_ctl set error-status 500
proxy_ctl once error
st --stats get k 2>"$tmp/err" | cmp - "$tmp/obj"
[ "$(proxy_stat error)" = 1 ] && logged error
grep -q '^retry get server_error 1$' "$tmp/err"

# A reset in place of a put's reply: the put landed unseen; its retry
# puts it again.
proxy_ctl once reset
st --stats put k2 "$tmp/obj" 2>"$tmp/err" >/dev/null
[ "$(proxy_stat reset)" = 2 ] && logged reset
grep -q '^retry put cut_off 1$' "$tmp/err"
direct get k2 | cmp - "$tmp/obj"

# A delayed request is answered late, and whole.
proxy_ctl set delay-ms 400
proxy_ctl once delay
t0=$(ms)
st get k | cmp - "$tmp/obj"
[ $(( $(ms) - t0 )) -ge 400 ]
[ "$(proxy_stat delay)" = 1 ] && logged delay

# A request never answered times out, and its retry is answered.
proxy_ctl once hang
st --stats --timeout 300ms get k 2>"$tmp/err" | cmp - "$tmp/obj"
[ "$(proxy_stat hang)" = 1 ] && logged hang
grep -q '^retry get timeout 1$' "$tmp/err"

# A byte flipped in a put's body: refused by the check, sent again, and
# the new object lands whole; in a part of an upload, the part is sent
# again.  A link that damages every put: the tries run out, the old
# object is kept, and a failed upload makes no object.
head -c 300000 /dev/urandom > "$tmp/new"
proxy_ctl once corrupt-put
st --stats put k "$tmp/new" 2>"$tmp/err"
grep -q '^requests=2 errors=0 retries=1 ' "$tmp/err"
grep -q '^retry put corrupt 1$' "$tmp/err"
[ "$(proxy_stat corrupt-put)" = 1 ] && [ "$(proxy_stat sha256-mismatch)" = 1 ]
direct get k | cmp - "$tmp/new"
proxy_ctl once corrupt-put
st upload big2 "$tmp/big" 5M
[ "$(proxy_stat corrupt-put)" = 2 ] && [ "$(proxy_stat sha256-mismatch)" = 2 ]
direct get big2 | cmp - "$tmp/big"
proxy_ctl set corrupt-put 1
st --retries 2 put k "$tmp/obj" 2>"$tmp/err" && fail "a damaged put was stored"
grep -q 'put k: HTTP 400 after 3 tries (XAmzContentSHA256Mismatch: ' "$tmp/err"
[ "$(proxy_stat corrupt-put)" = 5 ] && [ "$(proxy_stat sha256-mismatch)" = 5 ]
direct get k | cmp - "$tmp/new"
st --retries 1 upload big3 "$tmp/big" 5M 2>"$tmp/err" &&
    fail "a damaged part was kept"
grep -q 'XAmzContentSHA256Mismatch' "$tmp/err"
direct head big3 2>/dev/null && fail "a failed upload made an object"
proxy_ctl clear
st put k "$tmp/obj" >/dev/null

# A byte flipped in a ranged get's reply, then in a whole object's.
proxy_ctl once corrupt-range
st get-range k 0 1000 > "$tmp/got"
only_first_flipped "$tmp/got" <(part "$tmp/obj" 0 1000)
[ "$(proxy_stat corrupt-range)" = 1 ] && logged corrupt-range
proxy_ctl once corrupt-doc
st get k > "$tmp/got"
only_first_flipped "$tmp/got" "$tmp/obj"
[ "$(proxy_stat corrupt-doc)" = 1 ] && logged corrupt-doc

# The control socket's counters are the stats file's; bad commands are
# refused and change nothing.
[ "$(proxy_ctl stats)" = "$(cat "$proxy_dir/stats")" ]
proxy_ctl set reset 2 2>"$tmp/err" && fail "a probability of 2 was taken"
grep -q '^store-proxy ctl: error: ' "$tmp/err"
proxy_ctl frobnicate 2>/dev/null && fail "an unknown command was taken"
st get k | cmp - "$tmp/obj"

# --- random faults.  run SEED NAME: a fresh proxy with faults drawn from
# SEED, and the same gets through it, each read whole.
run ()
{
    start_store_proxy "$tmp/$2" --seed "$1" --command "set error 0.15" \
        --command "set reset 0.15" --command "set truncate 0.15" \
        --command "set delay 0.15" --command "set delay-ms 20"
    for i in $(seq 10); do
        st --retries 20 get k | cmp - "$tmp/obj"
        st --retries 20 get-range big 1000000 2000000 | cmp - "$tmp/big.part"
    done
}
run 7 a
for k in error reset truncate delay; do
    [ "$(proxy_stat $k)" -gt 0 ] || fail "seed 7 drew no $k fault"
done
run 7 b
# Where a body was cut ("at N") depends on the request's range, which for
# a ranged GET resumed after a reset depends on how much of the body had
# arrived: the faults must be the same, request by request, not the cuts.
uncut () { sed 's/ at [0-9]*$//' "$1"; }
cmp <(uncut "$tmp/a/faults.log") <(uncut "$tmp/b/faults.log")
[ "$(grep -v '^bytes-down ' "$tmp/a/stats")" = \
  "$(grep -v '^bytes-down ' "$tmp/b/stats")" ]
run 8 c
cmp -s "$tmp/a/faults.log" "$tmp/c/faults.log" &&
    fail "seeds 7 and 8 drew the same faults"
echo OK
