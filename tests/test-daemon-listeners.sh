#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# One nbdkit serves every export on its one listener, by name: two
# exports written and read back by two clients at the same time, byte for
# byte, over TCP (--listen 127.0.0.1:PORT) and over a Unix socket
# (--listen PATH); nbdinfo --list shows both.  The two daemons share one
# store under different --export-root prefixes, so neither sees the
# other's exports.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq nbdcopy nbdinfo cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"
dd if=/dev/urandom of="$tmp/a.img" bs=1M count=8 status=none
dd if=/dev/urandom of="$tmp/b.img" bs=1M count=4 status=none

# two_exports URI-PREFIX: create a and b, copy in, copy out, compare.
two_exports ()
{
    api POST /v1/exports/create '{"export_id":"a","size":8388608,"chunk_size":1048576}' >/dev/null
    api POST /v1/exports/create '{"export_id":"b","size":4194304,"chunk_size":1048576}' >/dev/null
    nbdinfo --list "$1" > "$tmp/list"
    grep -qx 'export="a":' "$tmp/list"
    grep -qx 'export="b":' "$tmp/list"
    nbdcopy "$tmp/a.img" "$(printf "$2" a)" & local p1=$!
    nbdcopy "$tmp/b.img" "$(printf "$2" b)" & local p2=$!
    wait $p1
    wait $p2
    nbdcopy "$(printf "$2" a)" "$tmp/a.out" & p1=$!
    nbdcopy "$(printf "$2" b)" "$tmp/b.out" & p2=$!
    wait $p1
    wait $p2
    cmp "$tmp/a.img" "$tmp/a.out"
    cmp "$tmp/b.img" "$tmp/b.out"
    rm "$tmp/a.out" "$tmp/b.out"
}

port=$(free_port)
start_lazyvold "$tmp/tcp" --listen "127.0.0.1:$port" --export-root tcp
two_exports "nbd://127.0.0.1:$port" "nbd://127.0.0.1:$port/%s"
grep -q "ready: NBD on 127.0.0.1:$port" "$tmp/tcp/lazyvold.log"

start_lazyvold "$tmp/unix" --export-root unix
two_exports "nbd+unix:///?socket=$nbd" "nbd+unix:///%s?socket=$nbd"
[ -S "$nbd" ]

store_tool list tcp/ / | sort > "$tmp/objects"
grep -qx 'tcp/a/ -' "$tmp/objects"
store_tool list unix/ / | matches -x 'unix/b/ -'
echo OK
