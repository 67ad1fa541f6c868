#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Starting lazyvold: --help lists exactly the flags lazyvold(8) documents;
# usage errors exit 2 with a message naming the problem; an nbdkit that
# cannot start makes lazyvold exit 1 with nbdkit's reason above its own;
# a second lazyvold on one cache root, or on an admin socket in use, is
# refused; a user who is not root and has no XDG_RUNTIME_DIR has no
# default admin socket (see test-lazyvolctl.sh for the default itself); --admin-group makes the socket 0660 for that group; without
# --foreground lazyvold returns once ready, writes --pidfile, and on
# SIGTERM stops everything and removes it, and a failing start in the
# background is reported on the terminal with exit 1 and nbdkit's own
# error lines (kept in the run directory's nbdkit.log too).
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq stat id unshare
tmp=$(make_tmpdir)
start_store "$tmp"
pod=$abs_top_srcdir/man/lazyvold.pod

"$LAZYVOLD" --help > "$tmp/help"
grep -o '^=item B<--[a-z0-9-]*>' "$pod" | sed 's/=item B<\(.*\)>/\1/' | sort -u > "$tmp/man-flags"
grep -o -- '--[a-z0-9][a-z0-9-]*' "$tmp/help" | sort -u > "$tmp/help-flags"
diff "$tmp/man-flags" "$tmp/help-flags"
"$LAZYVOLD" --version | grep -Eqx 'lazyvold [0-9]+\.[0-9]+\.[0-9]+'

# usage_error MESSAGE ARGS...: lazyvold ARGS exits 2 saying MESSAGE.
usage_error ()
{
    local msg=$1 s=0
    shift
    "$LAZYVOLD" "$@" 2> "$tmp/err" || s=$?
    [ "$s" = 2 ] || fail "exit status $s for: $*"
    grep -qF -- "$msg" "$tmp/err" || fail "no \"$msg\" in: $(cat "$tmp/err")"
}
usage_error 'expected a command: serve'
usage_error 'expected a command: serve' frobnicate
usage_error 'unrecognized option' serve --cache-root "$tmp/c" --colour red
usage_error '--cache-root DIR is required' serve
usage_error '--param wants KEY=VALUE' serve --cache-root "$tmp/c" --param readahead
usage_error 'use --bucket instead' serve --cache-root "$tmp/c" --param bucket=x
usage_error '--log-level must be' serve --cache-root "$tmp/c" --log-level loud
usage_error 'bad port' serve --cache-root "$tmp/c" --listen 127.0.0.1:99999
usage_error '--listen wants' serve --cache-root "$tmp/c" --listen nbd.sock
usage_error 'no group named' serve --cache-root "$tmp/c" --admin-group no-such-group-x
usage_error '--threads wants a number from 1 to 1024' serve --cache-root "$tmp/c" --threads 0
usage_error '--threads wants a number from 1 to 1024' serve --cache-root "$tmp/c" --threads 1025
# TLS: nbdkit's modes only, keys for any mode but off, and nbdkit's files
# there to read (the checks come before any file is touched).
usage_error '--tls must be off, on or require, not "maybe"' serve --cache-root "$tmp/c" --tls=maybe
usage_error '--tls-certificates and --tls-psk exclude each other' \
    serve --cache-root "$tmp/c" --tls-psk "$tmp/k.psk" --tls-certificates "$tmp"
usage_error '--tls=require needs --tls-certificates DIR or --tls-psk FILE' \
    serve --cache-root "$tmp/c" --tls=require
usage_error '--tls=off with --tls-psk' serve --cache-root "$tmp/c" --tls=off --tls-psk "$tmp/k.psk"
usage_error '--tls-verify-peer checks X.509 client certificates' \
    serve --cache-root "$tmp/c" --tls-psk "$tmp/k.psk" --tls-verify-peer
(cd "$tmp" && usage_error "--tls-psk: $tmp/k.psk: No such file or directory" \
     serve --cache-root "$tmp/c" --tls-psk k.psk)
usage_error "--tls-certificates: $tmp/ca-cert.pem: No such file or directory" \
    serve --cache-root "$tmp/c" --tls=on --tls-certificates "$tmp"
usage_error 'with --control, lazyvold runs no nbdkit' \
    serve --control "$tmp/ctl.sock" --tls-psk "$tmp/k.psk"
s=0
unshare --map-user=1000 env -u XDG_RUNTIME_DIR \
    "$LAZYVOLD" serve --control "$tmp/ctl.sock" 2> "$tmp/err" || s=$?
[ "$s" = 2 ]
grep -qF 'no default admin socket: XDG_RUNTIME_DIR is not set: give --admin-sock PATH' "$tmp/err"
usage_error 'unexpected argument' serve --cache-root "$tmp/c" extra
[ ! -e "$tmp/c" ]

# nbdkit refuses a parameter: lazyvold says so and exits 1.
s=0
"$LAZYVOLD" serve --foreground --plugin "$LAZYVOL_PLUGIN" --cache-root "$tmp/c" \
    --listen "$tmp/c.sock" --param readahead=lots 2> "$tmp/err" || s=$?
[ "$s" = 1 ]
grep -q 'readahead' "$tmp/err"
grep -q 'nbdkit exited with status 1 before it was ready' "$tmp/err"

# Group-accessible admin socket.
group=$(id -gn)
start_lazyvold "$tmp/a" --admin-group "$group"
[ "$(stat -c '%a %G' "$admin")" = "660 $group" ]
# nbdkit serves 64 requests of a connection at once unless told.
pid=$(curl -sS --unix-socket "$admin" http://localhost/v1/health | jq .nbdkit_pid)
tr '\0' '\n' < "/proc/$pid/cmdline" | grep -qx -- '--threads=64' ||
    fail "nbdkit runs without --threads=64: $(tr '\0' ' ' < "/proc/$pid/cmdline")"
# One lazyvold per cache root; one per admin socket.
s=0
"$LAZYVOLD" serve --foreground --plugin "$LAZYVOL_PLUGIN" --cache-root "$tmp/a/cache" \
    --listen "$tmp/x.sock" --admin-sock "$tmp/x-admin.sock" 2> "$tmp/err" || s=$?
[ "$s" = 1 ]
grep -q "another lazyvold is serving cache root $tmp/a/cache" "$tmp/err"
s=0
"$LAZYVOLD" serve --foreground --plugin "$LAZYVOL_PLUGIN" --cache-root "$tmp/b" \
    --listen "$tmp/b.sock" --admin-sock "$admin" 2> "$tmp/err" || s=$?
[ "$s" = 1 ]
grep -q "admin socket: $admin is in use by another process" "$tmp/err"
api GET /v1/health >/dev/null
stop_lazyvold

# In the background.
admin=$tmp/d/admin.sock
"$LAZYVOLD" serve --plugin "$LAZYVOL_PLUGIN" --cache-root "$tmp/d/cache" \
    --listen "$tmp/d/nbd.sock" --admin-sock "$admin" \
    --pidfile "$tmp/d/lazyvold.pid"
pid=$(cat "$tmp/d/lazyvold.pid")
cleanup_fn stop_lazyvold_at_exit "$pid" "$tmp/d/cache"
api GET /v1/health | jq -e '.status == "ok"'
kill "$pid"
wait_for 60 sh -c "! kill -0 $pid 2>/dev/null"
[ ! -e "$tmp/d/lazyvold.pid" ] && [ ! -e "$admin" ]
s=0
"$LAZYVOLD" serve --plugin "$LAZYVOL_PLUGIN" --cache-root "$tmp/d/cache" \
    --listen "$tmp/d/nbd.sock" --admin-sock "$admin" --param readahead=lots 2> "$tmp/err" || s=$?
[ "$s" = 1 ]
grep -q 'lazyvold: nbdkit exited with status 1 before it was ready' "$tmp/err"
# ...with nbdkit's own reason, which is also in the run directory's log.
grep -q 'nbdkit said: .*readahead' "$tmp/err"
grep -q 'readahead' "$tmp/d/cache/.lazyvold/nbdkit.log"
[ "$(stat -c %a "$tmp/d/cache/.lazyvold/nbdkit.log")" = 600 ]
echo OK
