#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A full disk under the file store is ENOSPC, code no_space, so that
# callers can tell "the bucket is full" from a fault: a put or a multipart
# upload that does not fit in a 1 MiB tmpfs fails with that code, leaves
# no temporary file behind, and a put that fits still works afterwards.
# The tmpfs is mounted in a mount namespace of this test's own (a user
# namespace too when not run as root), so nothing outlives the test.
[ "${LAZYVOL_TEST_MOUNT_NS-}" = 1 ] || exec "$srcdir/in-mount-ns.sh" "$0" "$@"
. "$srcdir/functions.sh"
requires mount umount head
src=$(make_tmpdir)
small=$(make_tmpdir)
mount -t tmpfs -o size=1m tmpfs "$small" || fail "cannot mount a tmpfs on $small"
cleanup_fn umount "$small"
b=$small/bucket
st () { "$STORE_TOOL" --bucket "$b" "$@"; }

head -c 2M /dev/urandom > "$src/big"
echo small > "$src/small"

if st put d/big "$src/big" 2> "$src/err"; then fail "2 MiB fit in 1 MiB"; fi
grep -q 'No space left on device \[no_space\]' "$src/err" ||
    fail "not no_space: $(cat "$src/err")"
if st upload d/up "$src/big" 5M 2> "$src/err"; then fail "2 MiB fit in 1 MiB"; fi
grep -q 'No space left on device \[no_space\]' "$src/err" ||
    fail "not no_space: $(cat "$src/err")"
[ "$(cd "$b" && find . -name '.tmp.*' | wc -l)" = 0 ] || fail "temporary file left"

st put d/small "$src/small" >/dev/null
[ "$(st get d/small)" = small ]
echo OK
