#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Fail-stop after a write-back error ("fsyncgate").  Once an fdatasync of
# cache.raw has failed, the kernel may have dropped the unwritten pages,
# and a later fdatasync can succeed without them.  So after the first
# failure (injected with an LD_PRELOAD shim) every later write, flush and
# snapshot of the export fails although fdatasync works again; status
# says failed_stop; other exports go on.  Close and open: the cache's
# page cache is dropped (what is served comes from the disk), the chunks
# of the last good flush are there, the failed write is not (it never
# was acknowledged), and writes work again.
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq fincore
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
status () { ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}"; }

export LAZYVOL_TEST_FAILSYNC=$tmp/fail
export LD_PRELOAD=$FAILSYNC
start_lazyvol "$tmp/w"
unset LD_PRELOAD
for e in f g; do
    ctl "{\"cmd\":\"create\",\"export_id\":\"$e\",\"size\":8388608,\"chunk_size\":1048576}" >/dev/null
done
qemu-io -f raw -c 'write -P 0x01 0 1M' -c flush "$(uri f)" >/dev/null

touch "$tmp/fail"
qemu-io -f raw -c "write -P 0x02 $MiB 1M" -c flush "$(uri f)" >/dev/null &&
    fail "a flush that failed to sync succeeded"
rm "$tmp/fail"
# fdatasync works again; the export does not pretend so.
qemu-io -f raw -c "write -P 0x03 $((2*MiB)) 4k" "$(uri f)" >/dev/null &&
    fail "a write after a write-back error succeeded"
qemu-io -f raw -c flush "$(uri f)" >/dev/null &&
    fail "a flush after a write-back error succeeded"
[ "$(field "$(status f)" failed_stop)" = true ]
r=$(ctl '{"cmd":"snapshot","export_id":"f"}') &&
    fail "a snapshot after a write-back error succeeded"
[ "$(field "$r" code)" = failed_stop ]
# The other export is not affected; reads of this one go on.
qemu-io -f raw -c 'write -P 0x07 0 4k' -c flush "$(uri g)" >/dev/null
qemu-io -f raw -c 'read -P 0x01 0 1M' "$(uri f)" >/dev/null

wait_for 30 no_clients f
ctl '{"cmd":"close","export_id":"f"}' >/dev/null
ctl '{"cmd":"open","export_id":"f"}' >/dev/null
[ "$(fincore -n -o PAGES "$tmp/w/cache/f/cache.raw" | tr -d " ")" = 0 ] ||
    fail "the page cache of cache.raw was kept: $(fincore "$tmp/w/cache/f/cache.raw")"
r=$(status f)
[ "$(field "$r" failed_stop)" = false ]
[ "$(field "$r" dirty_chunks)" = 1 ]
qemu-io -f raw -c 'read -P 0x01 0 1M' -c "read -P 0 $MiB 1M" "$(uri f)" \
    >/dev/null
qemu-io -f raw -c "write -P 0x04 $MiB 1M" -c flush "$(uri f)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"f"}' >/dev/null
echo OK
