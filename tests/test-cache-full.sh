#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A full cache disk is an error the client and the admin can name, and it
# does not stop a publish that needs no space.  With the cache root on a
# 24 MiB tmpfs: writes past the space fail with ENOSPC (not EIO), and the
# export does not fail stop (nothing was lost, a write just did not fit);
# a snapshot of what was written still succeeds, because the journal's
# one block comes from space reserved for it; and an admin request that
# needs space answers 507 no_space.  The tmpfs is mounted in a mount
# namespace of this test's own, so nothing outlives it.
[ "${LAZYVOL_TEST_MOUNT_NS-}" = 1 ] || exec "$srcdir/in-mount-ns.sh" "$0" "$@"
. "$srcdir/functions.sh"
requires nbdkit qemu-io jq mount umount
tmp=$(make_tmpdir)
start_store "$tmp"
mkdir "$tmp/small"
mount -t tmpfs -o size=24m tmpfs "$tmp/small" ||
    fail "cannot mount a tmpfs on $tmp/small"
cleanup_fn umount -l "$tmp/small"
MiB=1048576

start_lazyvol "$tmp/small"
ctl '{"cmd":"create","export_id":"e","size":134217728,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 0x61 0 8M' -c flush "$(uri e)" >/dev/null
ctl '{"cmd":"snapshot","export_id":"e"}' >/dev/null

# Fill the disk: the write fails with ENOSPC.
if qemu-io -f raw -c "write -P 0x62 $((8*MiB)) 32M" "$(uri e)" \
       > "$tmp/out" 2>&1; then
    fail "32 MiB fit in what was left of 24 MiB"
fi
matches 'No space left on device' "$tmp/out" ||
    fail "not ENOSPC: $(cat "$tmp/out")"
qemu-io -f raw -c flush "$(uri e)" >/dev/null

# What was written publishes, on the full disk.
r=$(ctl '{"cmd":"snapshot","export_id":"e"}') ||
    fail "the snapshot on a full disk failed: $r"
[ "$(field "$r" snapshot_created)" = true ]
r=$(ctl '{"cmd":"status","export_id":"e"}')
[ "$(field "$r" dirty_chunks)" = 0 ]
[ "$(field "$r" failed_stop)" = false ]

# A request that needs space is no_space.
r=$(ctl '{"cmd":"create","export_id":"f","size":134217728,"chunk_size":1048576}') &&
    fail "an export was created on a full disk"
[ "$(field "$r" code)" = no_space ] || fail "not no_space: $r"
stop_lazyvol

# The published image reads back elsewhere.
start_lazyvol "$tmp/r"
qemu-io -f raw -c 'read -P 0x61 0 8M' "$(uri e)" >/dev/null
echo OK
