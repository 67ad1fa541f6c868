#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A host cut off from the store stops acknowledging writes within one
# lease period L, and another host can then take its export over.
# Host A (lease 3 s) reaches the store through tests/store-proxy; a
# client writes to A without pause; the proxy starts answering 503 to
# everything.  Writes must be refused (EROFS) no later than L after the
# cut: A's last renewal was sent before it.  (EROFS reaches NBD clients
# as EPERM.)  Host B, which reaches the
# store, waits for A's lease to expire and takes the export.  When the
# store comes back to A, A finds the revocation, keeps refusing writes
# and keeps its unpublished ones; B publishes, A cannot.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq /usr/bin/python3
/usr/bin/python3 -c 'import nbd' || fail "python3-libnbd is not installed"
tmp=$(make_tmpdir)
LAZYVOL_TEST_BACKEND=s3
start_store "$tmp"
direct=("${STORE_ARGS[@]}")
start_store_proxy "$tmp/proxy" --down-file "$tmp/down"
L=3

store_via_proxy retries=0 timeout=1s
start_lazyvol "$tmp/a" host-id=hosta lease=$L
a_ctl=$ctlsock a_nbd=$nbd
ctl '{"cmd":"create","export_id":"w","size":8388608,"chunk_size":1048576}' >/dev/null
[ "$(field "$(ctl '{"cmd":"status","export_id":"w"}')" writable)" = true ]

# Write every 20 ms; cut the store off after a second of that; report
# when the first write was refused.
/usr/bin/python3 - "$(uri w)" "$tmp/down" > "$tmp/times.json" <<'EOF'
import errno, json, nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
buf = b"\xa5" * 4096
start = time.monotonic()
cut = None
i = 0
while True:
    now = time.monotonic()
    if cut is None and now - start >= 1:
        open(sys.argv[2], "w").close()
        cut = time.monotonic()
    try:
        h.pwrite(buf, (i % 2048) * 4096)
    except nbd.Error as e:
        # EROFS travels as NBD_EPERM.
        if e.errnum not in (errno.EROFS, errno.EPERM):
            sys.exit("write %d: %s" % (i, e))
        if cut is None:
            sys.exit("write %d refused before the cut" % i)
        print(json.dumps({"writes": i, "refused_after": now - cut}))
        break
    if cut is not None and now - cut > 10:
        sys.exit("writes still acknowledged 10 s after the cut")
    i += 1
    time.sleep(0.02)
EOF
refused_after=$(jq .refused_after "$tmp/times.json")
echo "writes refused $refused_after s after the cut (L = $L s)"
/usr/bin/python3 -c "import sys; sys.exit(0 if $refused_after <= $L + 0.25 else 1)" ||
    fail "writes were acknowledged $refused_after s after the cut, more than L"
s=$(ctl '{"cmd":"status","export_id":"w"}')
[ "$(field "$s" lease.valid)" = false ]
field "$s" notice | matches 'lease has lapsed'
dirty=$(field "$s" dirty_chunks)
[ "$dirty" -gt 0 ]

# B takes the export once A's lease record has been still for 1.5 L.
STORE_ARGS=("${direct[@]}")
start_lazyvol "$tmp/b" host-id=hostb lease=$L discover=false
b_ctl=$ctlsock b_nbd=$nbd
t0=$(date +%s%N)
s=$(ctl '{"cmd":"open","export_id":"w","takeover":true}')
waited=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(field "$s" owner.host_id)" = hostb ]
[ "$(field "$s" writable)" = true ]
[ "$waited" -ge $((L * 1000)) ] || fail "took over after $waited ms, before L"

# The store comes back to A: it learns it lost the export.
rm "$tmp/down"
nbd=$a_nbd ctlsock=$a_ctl
a_lost () {
    ctl '{"cmd":"status","export_id":"w"}' > "$tmp/a.json"
    jq -r .notice "$tmp/a.json" | matches 'another host has taken it over' &&
        [ "$(jq .lease.valid "$tmp/a.json")" = true ]
}
wait_for $((2 * L)) a_lost || fail "A did not learn it lost the export"
[ "$(jq .lease.valid "$tmp/a.json")" = true ]
[ "$(jq .writable "$tmp/a.json")" = false ]
[ "$(jq .dirty_chunks "$tmp/a.json")" = "$dirty" ]
r=$(ctl '{"cmd":"snapshot","export_id":"w"}') && fail "A published after losing w"
[ "$(field "$r" code)" = read_only ]
nbd=$b_nbd ctlsock=$b_ctl
qemu-io -f raw -c 'write -P 0xbb 0 1M' "$(uri w)" >/dev/null
[ "$(field "$(ctl '{"cmd":"snapshot","export_id":"w"}')" generation)" = 1 ]
store_tool get exports/w/owner.json | jq -e '.host_id == "hostb"' >/dev/null
echo OK
