#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# quickstart.sh, on the tree's own build (LAZYVOL_BUILD: used as it is):
# one line before its banner besides lazyvold's log, a demo export that takes writes at the
# URI it prints, lazyvolctl commands that work as printed, and a hint for
# /dev/nbd0 that names nbd-client only as something to install when it
# is missing.  SIGTERM stops it cleanly; a second run on the same state
# serves the demo export it made.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" curl qemu-io
tmp=$(make_tmpdir)

# quickstart DIR [PATH]: run quickstart.sh with state in DIR until its
# banner is out; its output in DIR.out, its pid in $qs_pid.
quickstart ()
{
    local d=$1
    port=$(free_port)
    LAZYVOL_BUILD=$abs_top_builddir LAZYVOL_STATE=$d \
        LAZYVOL_LISTEN=127.0.0.1:$port PATH=${2:-$PATH} \
        "$abs_top_srcdir/quickstart.sh" > "$d.out" 2>&1 &
    qs_pid=$!
    cleanup_fn kill_wait "$qs_pid"
    wait_for 120 matches '^Press Ctrl-C to stop' "$d.out" ||
        fail "no banner: $(tail -20 "$d.out")"
}
# stop: SIGTERM stops quickstart.sh and lazyvold with it, status 0.
stop ()
{
    local s=0
    kill -TERM "$qs_pid"
    wait "$qs_pid" || s=$?
    [ "$s" = 0 ] || fail "quickstart.sh exited $s: $(tail -5 "$1.out")"
}

# Without nbd-client on PATH: a PATH of everything else.
mkdir "$tmp/bin"
for p in /usr/local/bin/* /usr/bin/* /bin/*; do
    t=${p##*/}
    [ "$t" = nbd-client ] || [ -e "$tmp/bin/$t" ] || ln -s "$p" "$tmp/bin/$t"
done
quickstart "$tmp/a" "$tmp/bin"
cat "$tmp/a.out"
# Before the banner: one line, and lazyvold's log of its start.
before=$(sed -n '/^lazyvol is serving/q;p' "$tmp/a.out" |
    grep -cv -e '^$' -e ' lazyvold\[[0-9]*\]: info: ')
[ "$before" = 1 ] || fail "$before lines before the banner"
matches -x "quickstart: using the build in $abs_top_builddir" "$tmp/a.out"
matches -x "lazyvol is serving export \"demo\" (1 GiB) on nbd://127.0.0.1:$port/demo" "$tmp/a.out"
matches -F '(for /dev/nbd0: install nbd-client, then ' "$tmp/a.out"
! grep -q '^  .*modprobe nbd && ' "$tmp/a.out" || fail "nbd-client hinted"
qemu-io -f raw -c 'write -P 0x42 0 1M' "nbd://127.0.0.1:$port/demo" >/dev/null
# The lazyvolctl lines run as printed.
while read -r line; do
    eval "$line" > "$tmp/ctl.out" || fail "$line: $(cat "$tmp/ctl.out")"
done < <(sed -n 's/^  \(.*lazyvolctl .*\)$/\1/p' "$tmp/a.out")
matches -E '^published snapshot [0-9a-f]{32} of demo' "$tmp/ctl.out"
stop "$tmp/a"

# With nbd-client (a stand-in) on PATH: the hint is the command itself.
printf '#!/bin/sh\nexit 0\n' > "$tmp/bin/nbd-client"
chmod +x "$tmp/bin/nbd-client"
quickstart "$tmp/b" "$tmp/bin"
if [ "$(id -u)" = 0 ]; then
    matches -x "  modprobe nbd && nbd-client 127.0.0.1 $port /dev/nbd0 -N demo" "$tmp/b.out"
fi
! grep -q 'install nbd-client' "$tmp/b.out" || fail "install hinted"
stop "$tmp/b"

# Again on the first run's state: its demo export, with its data.
quickstart "$tmp/a"
qemu-io -f raw -c 'read -P 0x42 0 1M' "nbd://127.0.0.1:$port/demo" \
    >/dev/null || fail "the demo export lost its data"
stop "$tmp/a"
echo OK
