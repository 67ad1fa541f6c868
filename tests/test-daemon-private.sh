#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# What lazyvold and its nbdkit leave on disk is private by default: the
# NBD and admin Unix sockets are 0600, nbdkit's pid file 0600, cache
# directories 0700 and cache files 0600, the publish journal 0600.  With
# --listen-group and --admin-group GROUP the sockets are 0660 for that
# group, also after nbdkit restarts.  --listen-group with a TCP listener
# is refused: any local user can connect to one.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io stat id
tmp=$(make_tmpdir)
start_store "$tmp"
mode () { stat -c %a "$1"; }
group () { stat -c %G "$1"; }

start_lazyvold "$tmp/p"
api POST /v1/exports/create '{"export_id":"v","size":8388608,"chunk_size":1048576}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' -c flush "$(uri v)" >/dev/null
api POST /v1/exports/v/snapshot >/dev/null
c=$tmp/p/cache
[ "$(mode "$nbd")" = 600 ] || fail "NBD socket is $(mode "$nbd")"
[ "$(mode "$admin")" = 600 ] || fail "admin socket is $(mode "$admin")"
[ "$(mode "$c/.lazyvold/nbdkit.pid")" = 600 ] ||
    fail "pid file is $(mode "$c/.lazyvold/nbdkit.pid")"
for d in "$c" "$c/.lazyvold" "$c/v"; do
    [ "$(mode "$d")" = 700 ] || fail "$d is $(mode "$d")"
done
for f in "$c/v"/*; do
    [ "$(mode "$f")" = 600 ] || fail "$f is $(mode "$f")"
done
stop_lazyvold

g=$(id -gn)
start_lazyvold "$tmp/g" --listen-group "$g" --admin-group "$g"
for s in "$nbd" "$admin"; do
    [ "$(mode "$s")" = 660 ] && [ "$(group "$s")" = "$g" ] ||
        fail "$s is $(mode "$s") $(group "$s")"
done
# nbdkit restarts (killed): its new socket gets the group mode again.
old=$(nbdkit_pid_of "$tmp/g")
kill -9 "$old"
wait_for 30 sh -c "[ -s '$tmp/g/cache/.lazyvold/nbdkit.pid' ] &&
                   [ \$(cat '$tmp/g/cache/.lazyvold/nbdkit.pid') != $old ]" ||
    fail "nbdkit was not restarted"
wait_for 30 api_ready || fail "nbdkit did not come back"
[ "$(mode "$nbd")" = 660 ] || fail "the restarted NBD socket is $(mode "$nbd")"
stop_lazyvold

if "$LAZYVOLD" serve --foreground --cache-root "$tmp/t" \
       --listen 127.0.0.1:1 --listen-group "$g" 2>"$tmp/err"; then
    fail "--listen-group with TCP was accepted"
fi
matches 'any local user can connect to a TCP listener' "$tmp/err"
echo OK
