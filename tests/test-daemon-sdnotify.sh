#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# systemd's Type=notify protocol (sd_notify(3)), with a listener playing
# systemd (notify_listener.py): in the foreground lazyvold itself sends
# READY=1 once the admin API answers and nbdkit serves, and STOPPING=1
# when SIGTERM begins its shutdown; nbdkit does not inherit
# NOTIFY_SOCKET.  In the background (an abstract socket this time) the
# parent, which systemd would take for the main process, sends READY=1
# with MAINPID= naming the daemon, and the daemon sends STOPPING=1.  A
# NOTIFY_SOCKET that is not a socket address is reported and lazyvold
# serves anyway; a failing start says why in STATUS=.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq python3
tmp=$(make_tmpdir)
start_store "$tmp"

# listen ADDRESS LOG: start the listener and wait until it is bound.
listen ()
{
    python3 "$srcdir/notify_listener.py" "$1" "$2" > "$2.out" &
    cleanup_fn kill_wait $!
    wait_for 10 grep -qx bound "$2.out" || fail "notify_listener.py did not start"
}

# Foreground.
listen "$tmp/notify" "$tmp/fg.log"
NOTIFY_SOCKET=$tmp/notify start_lazyvold "$tmp/fg"
wait_for 10 grep -q 'READY=1' "$tmp/fg.log" || fail "no READY=1"
cat "$tmp/fg.log"
grep -qx "pid=$lazyvold_pid READY=1 STATUS=ready: NBD on $tmp/fg/nbd.sock (no TLS), admin API on $tmp/fg/admin.sock" "$tmp/fg.log"
nbdkit_pid=$(nbdkit_pid_of "$tmp/fg")
tr '\0' '\n' < "/proc/$nbdkit_pid/environ" > "$tmp/nbdkit.env"
grep -q '^LC_ALL=' "$tmp/nbdkit.env"      # the environment was read...
! grep -q '^NOTIFY_SOCKET=' "$tmp/nbdkit.env"  # ...and this is not in it
! grep -q STOPPING "$tmp/fg.log"
stop_lazyvold
[ "$lazyvold_status" = 0 ]
grep -qx "pid=$lazyvold_pid STOPPING=1 STATUS=Terminated: shutting down" "$tmp/fg.log"
[ "$(wc -l < "$tmp/fg.log")" = 2 ]

# Background, abstract socket: the parent hands over with MAINPID=.
name=@lazyvol-test-notify-$$
listen "$name" "$tmp/bg.log"
mkdir -p "$tmp/bg"
NOTIFY_SOCKET=$name "$LAZYVOLD" serve --plugin "$LAZYVOL_PLUGIN" \
    --cache-root "$tmp/bg/cache" --listen "$tmp/bg/nbd.sock" \
    --admin-sock "$tmp/bg/admin.sock" --pidfile "$tmp/bg/pid" \
    --storage-backend file --bucket "$tmp/bucket" &
parent=$!
wait "$parent"                  # returns once the daemon is ready
daemon=$(cat "$tmp/bg/pid")
cleanup_fn kill_wait "$daemon"
wait_for 10 grep -q 'READY=1' "$tmp/bg.log" || fail "no READY=1"
cat "$tmp/bg.log"
grep -qx "pid=$parent READY=1 MAINPID=$daemon" "$tmp/bg.log"
kill -TERM "$daemon"
wait_for 60 grep -q STOPPING "$tmp/bg.log" || fail "no STOPPING=1"
grep -qx "pid=$daemon STOPPING=1 STATUS=Terminated: shutting down" "$tmp/bg.log"
wait_for 60 sh -c "! kill -0 $daemon 2>/dev/null"

# Not a socket address: said once, and lazyvold serves.
NOTIFY_SOCKET=notify start_lazyvold "$tmp/bad"
grep -q 'NOTIFY_SOCKET=notify: neither an absolute socket path nor an abstract socket name' "$tmp/bad/lazyvold.log"
stop_lazyvold

# A failing start: STATUS= says why, and no READY=1.
: > "$tmp/fg.log"
s=0
NOTIFY_SOCKET=$tmp/notify "$LAZYVOLD" serve --foreground \
    --plugin "$LAZYVOL_PLUGIN" --cache-root "$tmp/fail" \
    --listen "$tmp/fail.sock" --admin-sock "$tmp/fail-admin.sock" \
    --param readahead=lots 2> "$tmp/err" || s=$?
[ "$s" = 1 ]
wait_for 10 grep -q 'STATUS=startup failed' "$tmp/fg.log" || fail "no STATUS="
cat "$tmp/fg.log"
grep -q 'STATUS=startup failed: nbdkit exited with status 1 before it was ready' "$tmp/fg.log"
! grep -q READY "$tmp/fg.log"
