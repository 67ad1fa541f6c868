#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A cold sequential read fetches runs of chunks stored back to back with
# one ranged GET each, not one GET a chunk, and a GET cut off in its body
# resumes where it stopped instead of starting over.  Through the store
# proxy, in front of the S3 store, on an export of 32 MiB in 256 KiB
# chunks (128 chunks, published in one blob), from an empty cache each
# time:
#  - nbdcopy reads the right bytes with at most 12 ranged GETs (one a
#    chunk would be 128);
#  - one 8 MiB read (32 chunks, one NBD request) is one GET, without
#    readahead too;
#  - when that GET is cut off in its body, the read still returns the
#    right bytes, after one cut_off retry, and the proxy fetched from the
#    store less than the cut more than the 8 MiB (and the export's
#    documents): a restart would fetch the part before the cut again.
#    The cut (seeded) must be over 1 MiB into the GET.
. "$srcdir/functions.sh"
requires nbdkit nbdcopy qemu-io jq cmp /usr/bin/python3
set -o pipefail
tmp=$(make_tmpdir)
start_s3 cond-put
MiB=1048576

# serve [PARAMS...] -- [PROXY-COMMANDS...]: a fresh nbdkit (empty cache)
# through a fresh proxy, export r open.
n=0
serve ()
{
    local params=() commands=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do params+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    for c in "$@"; do commands+=(--command "$c"); done
    [ -n "${nbdkit_pid:-}" ] && stop_lazyvol
    n=$((n + 1))
    start_store_proxy "$tmp/proxy$n" ${commands[@]+"${commands[@]}"}
    store_via_proxy discover=false ${params[@]+"${params[@]}"}
    start_lazyvol "$tmp/$n"
    [ "$n" = 1 ] || ctl '{"cmd":"open","export_id":"r"}' >/dev/null
}
# metric JQ: a number from the plugin's metrics.
metric () { ctl '{"cmd":"metrics"}' | jq -r "$1"; }

head -c $((32 * MiB)) /dev/urandom > "$tmp/image"
serve
ctl '{"cmd":"create","export_id":"r","size":33554432,"chunk_size":262144}' >/dev/null
nbdcopy "$tmp/image" "$(uri r)"
ctl '{"cmd":"snapshot","export_id":"r"}' | jq -e .ok >/dev/null

serve
nbdcopy "$(uri r)" "$tmp/out"
cmp "$tmp/image" "$tmp/out"
gets=$(metric .store.range_gets)
echo "nbdcopy: $gets ranged GETs"
[ "$gets" -le 12 ] || fail "$gets ranged GETs for 128 chunks"

# read8 [PROXY-COMMANDS...]: serve without readahead, read 8 MiB at 8 MiB
# in one NBD request, and check its bytes; $gets: the GETs it took.
read8 ()
{
    local before
    serve readahead=0 -- "$@"
    before=$(metric .store.range_gets)
    /usr/bin/python3 - "$tmp/image" "$nbd" <<'PY'
import sys, nbd
want = open(sys.argv[1], 'rb').read()[8 << 20:16 << 20]
h = nbd.NBD()
h.set_export_name("r")
h.connect_unix(sys.argv[2])
assert h.pread(8 << 20, 8 << 20) == want, "8 MiB read differs"
PY
    gets=$(( $(metric .store.range_gets) - before ))
}

read8
echo "one 8 MiB read: $gets ranged GETs"
[ "$gets" = 1 ] || fail "$gets ranged GETs for one read of 32 chunks"

read8 "set match delta.blob" "next 1 truncate"
[ "$gets" = 1 ] || fail "$gets ranged GETs for one read of 32 chunks"
[ "$(proxy_stat truncate)" = 1 ]
[ "$(metric '[.store.retries[] | select(.op == "get_range" and .reason == "cut_off") | .count] | add // 0')" = 1 ]
down=$(proxy_stat bytes-down)
cut=$(sed -n 's/^[0-9]* truncate GET .* at \([0-9]*\)$/\1/p' "$proxy_dir/faults.log")
echo "cut off once at $cut: $down bytes from the store"
[ "$cut" -gt "$MiB" ] || fail "the cut at '$cut' is too early to tell"
[ "$down" -lt $((8 * MiB + cut)) ] ||
    fail "the cut GET started over: $down bytes from the store"
