#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# quickstart.sh: install what is missing (Debian or Ubuntu; apt-get as
# root or through sudo), build lazyvol, and run lazyvold in the foreground
# on the embedded store: a local directory as the object store (under
# ./quickstart-state), a 1 GiB demo export, NBD on 127.0.0.1:10809.
# It prints the commands to try.  Ctrl-C stops everything cleanly.
#
# The build's output goes to a log, named if the build fails.
#
#   LAZYVOL_STATE=DIR   state directory (./quickstart-state)
#   LAZYVOL_LISTEN=H:P  NBD listener (127.0.0.1:10809)
#   LAZYVOL_BUILD=DIR   an existing build to use as it is (default: build
#                       in ./_build)
set -eu
# LAZYVOL_BUILD as an absolute path, before the cd.
if [ -n "${LAZYVOL_BUILD:-}" ]; then
    LAZYVOL_BUILD=$(cd "$LAZYVOL_BUILD" && pwd)
fi
cd "$(dirname "$0")"
top=$(pwd)
state=${LAZYVOL_STATE:-$top/quickstart-state}
listen=${LAZYVOL_LISTEN:-127.0.0.1:10809}
build=${LAZYVOL_BUILD:-$top/_build}
admin=$state/admin.sock

PACKAGES="build-essential autoconf automake libtool pkg-config perl
  nbdkit nbdkit-plugin-dev libcurl4-openssl-dev libssl-dev libjson-c-dev
  libevent-dev libnbd-bin qemu-utils curl"
# shellcheck disable=SC2086
./install-deps.sh $PACKAGES

mkdir -p "$build"
log=$build/quickstart-build.log
if [ -n "${LAZYVOL_BUILD:-}" ]; then
    echo "quickstart: using the build in $build"
    [ -x "$build/ctl/lazyvold" ] ||
        { echo "quickstart: no lazyvold built in $build" >&2; exit 1; }
else
    echo "quickstart: building lazyvol in $build (log: $log)"
fi
if [ -z "${LAZYVOL_BUILD:-}" ] && ! {
    if [ ! -f "$build/Makefile" ]; then
        { [ -x configure ] && [ configure -nt configure.ac ]; } ||
            ./bootstrap.sh
        (cd "$build" && "$top/configure")
    fi
    make -C "$build" -j"$(nproc)"
} > "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "quickstart: the build failed; its output is in $log" >&2
    exit 1
fi

mkdir -p "$state"
"$build/ctl/lazyvold" serve --cache-root "$state" --listen "$listen" \
    --admin-sock "$admin" \
    --plugin "$build/plugin/.libs/nbdkit-lazyvol-plugin.so" \
    --foreground &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' INT TERM

api () { curl -sS --unix-socket "$admin" "$@"; }
# Up, and done opening the exports it found (demo, from an earlier run).
discovered () {
    api -f http://localhost/v1/health 2>/dev/null |
        grep -Eq '"state": *"(done|failed|adopted)"'
}
i=0
until discovered; do
    kill -0 $pid 2>/dev/null || { echo "quickstart: lazyvold failed" >&2; exit 1; }
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "quickstart: lazyvold did not start" >&2; kill $pid; exit 1; }
    sleep 0.1
done
if ! api -f -o /dev/null http://localhost/v1/exports/demo/status 2>/dev/null; then
    api -f -X POST -H 'content-type: application/json' \
        -d '{"export_id":"demo","size":1073741824}' \
        http://localhost/v1/exports/create >/dev/null
fi

# Attaching a kernel block device needs nbd-client and root.
host=${listen%:*} port=${listen##*:}
if [ "$(id -u)" = 0 ]; then sudo=; else sudo="sudo "; fi
if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
    kernel="  (for /dev/nbd0, as root: modprobe nbd && nbd-client $host $port /dev/nbd0 -N demo)"
elif ! command -v nbd-client >/dev/null; then
    kernel="  (for /dev/nbd0: install nbd-client, then ${sudo}modprobe nbd and
   ${sudo}nbd-client $host $port /dev/nbd0 -N demo)"
else
    kernel="  ${sudo}modprobe nbd && ${sudo}nbd-client $host $port /dev/nbd0 -N demo"
fi
cat <<MSG

lazyvol is serving export "demo" (1 GiB) on nbd://$listen/demo
Object store: $state/.store    Cache: $state/demo    Admin API: $admin

Try, in another terminal:
  nbdinfo --list nbd://$listen
  qemu-io -f raw -c 'write -P 0x42 0 1M' nbd://$listen/demo
  $build/ctl/lazyvolctl --socket $admin status demo
  $build/ctl/lazyvolctl --socket $admin snapshot demo
  curl --unix-socket $admin http://localhost/v1/exports/demo/snapshots
  ls -R $state/.store/exports/demo
$kernel

Press Ctrl-C to stop (exports are flushed and closed cleanly).
MSG
wait $pid
