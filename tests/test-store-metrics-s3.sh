#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Bodies damaged on the way are fetched again, and the store's counters
# say what happened, by operation and reason.  Through a proxy in front of
# the S3 store that flips a byte of chosen replies:
#  - a volume.json that does not parse once is fetched again on open
#    (retries{get,corrupt} = 1), and so is a manifest, which is read as
#    it arrives;
#  - a manifest whose reply is cut off in its body is fetched again by a
#    new reader (retries{get,cut_off} = 1, nothing corrupt), and the
#    export reads right;
#  - a chunk whose body fails its SHA-256 twice is fetched a third time
#    and reads right (retries{get_range,corrupt} = 2, no failure);
#  - one that fails three times is EIO (errors{get_range,corrupt} = 1,
#    the export's fill_errors = 1);
#  - with the store answering 503 to everything, each failed fill is one
#    failure (errors{get_range,throttled}) after its throttled retries;
#  - a look-up of a missing export (404) is an answer, not a failure.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq /usr/bin/python3
tmp=$(make_tmpdir)
start_s3 cond-put
MiB=1048576

# serve [COMMAND...]: a fresh nbdkit (empty cache) through a fresh proxy
# (tests/store-proxy) that runs the COMMANDs ("next 2 corrupt-range": the
# next two ranged GETs have a byte flipped); from the second call on,
# with export m open.  While $tmp/down exists the proxy answers 503 to
# everything.
n=0
serve ()
{
    local commands=() c
    for c in "$@"; do commands+=(--command "$c"); done
    [ -n "${nbdkit_pid:-}" ] && stop_lazyvol
    n=$((n + 1))
    start_store_proxy "$tmp/proxy$n" --down-file "$tmp/down" \
        ${commands[@]+"${commands[@]}"}
    STORE_ARGS=(storage-backend=s3 "bucket=$S3_BUCKET"
                "endpoint-url=$proxy_url" retries=2 timeout=10 readahead=0
                discover=false)
    start_lazyvol "$tmp/$n"
    [ "$n" = 1 ] || ctl '{"cmd":"open","export_id":"m"}' >/dev/null
}
# count TABLE OP REASON: a cell of the store's failure or retry counters.
count ()
{
    ctl '{"cmd":"metrics"}' |
        jq "[.store.$1[] | select(.op == \"$2\" and .reason == \"$3\")
             | .count] | add // 0"
}
total () { ctl '{"cmd":"metrics"}' | jq "[.store.$1[].count] | add // 0"; }

serve
ctl '{"cmd":"create","export_id":"m","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x3c 0 4M' -c flush "$(uri m)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"m"}' >/dev/null
ctl '{"cmd":"open","export_id":"missing"}' >/dev/null && fail "opened nothing"
[ "$(total errors)" = 0 ] || fail "a 404 counted as a failure"

serve "next 1 corrupt-doc"
[ "$(proxy_stat corrupt-doc)" = 1 ]
[ "$(count retries get corrupt)" = 1 ]
[ "$(total errors)" = 0 ]

serve "set match manifest.json" "next 1 corrupt-doc"
[ "$(proxy_stat corrupt-doc)" = 1 ]
[ "$(count retries get corrupt)" = 1 ]
[ "$(total errors)" = 0 ]

serve "set match manifest.json" "next 1 truncate"
[ "$(proxy_stat truncate)" = 1 ]
[ "$(count retries get cut_off)" = 1 ]
[ "$(count retries get corrupt)" = 0 ]
[ "$(total errors)" = 0 ]
qemu-io -f raw -c 'read -P 0x3c 0 4M' "$(uri m)" >/dev/null

serve "next 2 corrupt-range"
qemu-io -f raw -c 'read -P 0x3c 0 1M' "$(uri m)" >/dev/null
[ "$(proxy_stat corrupt-range)" = 2 ]
[ "$(count retries get_range corrupt)" = 2 ]
[ "$(total errors)" = 0 ]

serve "next 3 corrupt-range"
qemu-io -f raw -c "read $MiB 4k" "$(uri m)" >/dev/null 2>&1 &&
    fail "a chunk that failed its SHA-256 three times was served"
[ "$(proxy_stat corrupt-range)" = 3 ]
[ "$(count retries get_range corrupt)" = 2 ]
[ "$(count errors get_range corrupt)" = 1 ]
[ "$(total errors)" = 1 ]
ctl '{"cmd":"metrics"}' | jq -e '.exports[0].fill_errors == 1' >/dev/null
qemu-io -f raw -c "read -P 0x3c $MiB 1M" "$(uri m)" >/dev/null  # now clean

serve
touch "$tmp/down"
for c in 2 3; do
    qemu-io -f raw -c "read $((c*MiB)) 4k" "$(uri m)" >/dev/null 2>&1 &&
        fail "read through a store that answers 503"
done
[ "$(count errors get_range throttled)" = 2 ]
[ "$(count retries get_range throttled)" = 4 ]
[ "$(total errors)" = 2 ]
rm "$tmp/down"
qemu-io -f raw -c "read -P 0x3c $((2*MiB)) 2M" "$(uri m)" >/dev/null
echo OK
