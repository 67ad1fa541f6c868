#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# in-mount-ns.sh TEST ARGS...: run TEST in a mount namespace of its own
# (and a user namespace when not root), so that what it mounts cannot
# outlive it.  TEST sees LAZYVOL_TEST_MOUNT_NS=1.  Tests start with
#   [ "${LAZYVOL_TEST_MOUNT_NS-}" = 1 ] || exec "$srcdir/in-mount-ns.sh" "$0" "$@"
command -v unshare >/dev/null ||
    { echo "FAIL: required tool 'unshare' is not installed" >&2; exit 1; }
ns=(--mount)
[ "$(id -u)" = 0 ] || ns+=(--map-root-user)
LAZYVOL_TEST_MOUNT_NS=1 exec unshare "${ns[@]}" "$BASH" "$@"
