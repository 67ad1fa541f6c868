#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# create refuses an image whose local cache could never exist here, and
# writes nothing then: with the cache root on a small ext4 (whose files
# stop at 16 TiB), a 32 TiB export is refused (too_large, naming the file
# system), while an 8 TiB one is created and loads.  (The limit on the
# chunk state's memory is in test-control-hostile.sh.)  The file system is
# mounted in a mount namespace of this test's own.
[ "${LAZYVOL_TEST_MOUNT_NS-}" = 1 ] || exec "$srcdir/in-mount-ns.sh" "$0" "$@"
. "$srcdir/functions.sh"
requires nbdkit jq mkfs.ext4 mount umount truncate
tmp=$(make_tmpdir)
start_store "$tmp"
truncate -s 64M "$tmp/fs.img"
mkfs.ext4 -q -F -b 4096 "$tmp/fs.img"
mkdir "$tmp/ext4"
mount -o loop "$tmp/fs.img" "$tmp/ext4" ||
    fail "cannot mount an ext4 image on $tmp/ext4"
cleanup_fn umount -l "$tmp/ext4"

start_lazyvol "$tmp/ext4"
TiB=1099511627776
r=$(ctl "{\"cmd\":\"create\",\"export_id\":\"big\",\"size\":$((32*TiB))}") &&
    fail "a 32 TiB export was created on ext4"
[ "$(field "$r" code)" = too_large ] || fail "not too_large: $r"
field "$r" error | matches 'cannot hold a 35184372088832-byte cache.raw'
store_tool list exports/ > "$tmp/objects"
! matches 'big/' "$tmp/objects" || fail "the refused export was written"

r=$(ctl "{\"cmd\":\"create\",\"export_id\":\"ok\",\"size\":$((8*TiB))}")
[ "$(field "$r" image_size)" = $((8*TiB)) ]
echo OK
