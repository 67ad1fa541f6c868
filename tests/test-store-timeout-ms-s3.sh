#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A stall timeout given in milliseconds is kept to the millisecond, and a
# request that stalls past it is tried again at once:
#  - the plugin's timeout= and store-tool's --timeout take "1500ms", "2s"
#    or a bare number of seconds; anything else is refused at start;
#  - through tests/store-proxy holding one request for 10 s, store-tool
#    --timeout 300ms gives up on it after 300 ms (not after a whole
#    second, as curl's own stall timer would), and with retries reads the
#    object whole, long before the held request would have been answered;
#  - the plugin with timeout=400ms reads a chunk through such a delay: its
#    fill times out, is retried (retries{get_range,timeout}), and the read
#    returns the chunk's bytes well within the delay.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq cmp
start_s3 cond-put
tmp=$(make_tmpdir)

st () { "$STORE_TOOL" --backend s3 --bucket "$S3_BUCKET" \
            --endpoint-url "$proxy_url" "$@"; }
ms () { now_ms; }

head -c 300000 /dev/urandom > "$tmp/obj"
start_store_proxy "$tmp/p" --command "set delay-ms 10000"
st put k "$tmp/obj" >/dev/null

# --- the syntax.
for t in 30 2s 1500ms; do
    st --timeout "$t" get k | cmp - "$tmp/obj"
done
for t in 0 0ms 1.5s 5x 3601 ms ""; do
    st --timeout "$t" get k 2>"$tmp/err" && fail "--timeout '$t' was taken"
    grep -q "^store-tool: bad --timeout $t\$" "$tmp/err"
done
plugin () { nbdkit -U - "$LAZYVOL_PLUGIN" "cache-root=$tmp/c" \
                storage-backend=file "bucket=$tmp/b" "$@" --run true; }
plugin timeout=1500ms
plugin timeout=2s
plugin timeout=7
plugin timeout=5x 2>"$tmp/err" && fail "timeout=5x was taken"
grep -q 'timeout must be seconds (30, 2s) or milliseconds (1500ms), from 1ms to 3600s, not 5x' "$tmp/err"

# --- store-tool: one try, held by the proxy, gives up after 300 ms.
proxy_ctl once delay
t0=$(ms)
st --timeout 300ms --retries 0 get k 2>"$tmp/err" >/dev/null &&
    fail "a held request was answered"
t=$(( $(ms) - t0 ))
[ "$t" -ge 300 ] && [ "$t" -lt 900 ] || fail "gave up after $t ms"
grep -q '^store-tool: get k: Connection timed out (no progress for 300 ms) \[store_unavailable\]$' "$tmp/err"

# With retries, the next try is answered.
proxy_ctl once delay
t0=$(ms)
st --timeout 300ms --retries 3 --stats get k 2>"$tmp/err" | cmp - "$tmp/obj"
t=$(( $(ms) - t0 ))
[ "$t" -lt 5000 ] || fail "took $t ms"
grep -q '^retry get timeout [1-3]$' "$tmp/err"
[ "$(proxy_stat delay)" = 2 ]

# --- the plugin: an export published straight to the store, then read
# through the proxy with timeout=400ms while it holds one request.
STORE_ARGS=(storage-backend=s3 "bucket=$S3_BUCKET" "endpoint-url=$S3_ENDPOINT")
start_lazyvol "$tmp/w"
ctl '{"cmd":"create","export_id":"m","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x5a 0 4M' -c flush "$(uri m)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"m"}' >/dev/null
stop_lazyvol
store_via_proxy retries=5 timeout=400ms readahead=0 discover=false
start_lazyvol "$tmp/r"
ctl '{"cmd":"open","export_id":"m"}' >/dev/null
proxy_ctl once delay
t0=$(ms)
qemu-io -f raw -c 'read -P 0x5a 1M 1M' "$(uri m)" >/dev/null
t=$(( $(ms) - t0 ))
[ "$t" -lt 5000 ] || fail "the read took $t ms"
[ "$(proxy_stat delay)" = 3 ]
ctl '{"cmd":"metrics"}' |
    jq -e '[.store.retries[] | select(.op == "get_range" and
            .reason == "timeout") | .count] | add >= 1' >/dev/null
echo OK
