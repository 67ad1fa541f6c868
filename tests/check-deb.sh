#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# check-deb.sh BUILD-DIR: build the Debian packages as a distribution
# would, from the tarball "make dist" writes, and try them.  Run by
# ./check.sh after make check; root or sudo is needed to install.
#
#  1. make dist in BUILD-DIR; the tarball is unpacked in BUILD-DIR/deb/
#     (dpkg-buildpackage runs distclean and writes the .debs to ..);
#  2. dpkg-buildpackage -us -uc -b, with DEB_BUILD_OPTIONS=nocheck (make
#     check has just run from the same source), whose configure must not
#     warn that a directory is not where nbdkit or systemd looks; then
#     lintian, which must find no error;
#  3. the .debs unpacked with dpkg -x into deb/root/: debian/tests/smoke
#     runs the unpacked lazyvold and plugin (serve, create, write,
#     snapshot, read back);
#  4. dpkg -i: systemd-analyze verify on the installed units (it needs
#     the ExecStart binary and the man pages Documentation= names, and no
#     systemd as PID 1), the smoke test again against the installed
#     packages, then dpkg --purge, and the user lazyvol is removed if the
#     install created it.  Not done, with a message, where lazyvol is
#     installed already, or where systemd runs as PID 1 (the package
#     would start lazyvold.service) unless LAZYVOL_CHECK_DEB_INSTALL=1.
set -eu
build=$(cd "$1" && pwd)
out=$build/deb
jobs=$(nproc 2>/dev/null || echo 2)
if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi

step () { echo "===== check-deb: $*"; }

step "make dist"
rm -rf "$out"
mkdir -p "$out/root"
make -C "$build" -s dist
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$build/Makefile")
tar -xzf "$build/lazyvol-$version.tar.gz" -C "$out"
src=$out/lazyvol-$version

step "dpkg-buildpackage -us -uc -b"
if ! (cd "$src" &&
    DEB_BUILD_OPTIONS="nocheck parallel=$jobs" dpkg-buildpackage -us -uc -b) \
    > "$out/build.log" 2>&1
then
    tail -n 40 "$out/build.log"
    exit 1
fi
ls "$out"/*.deb
# debian/rules installs where nbdkit and systemd look: configure agrees.
if grep 'configure: WARNING' "$out/build.log"; then
    echo "check-deb: configure warned in the package build" >&2
    exit 1
fi

step "lintian"
lintian --info --display-info --fail-on error,warning "$out"/*.changes

step "smoke test of the unpacked packages"
for deb in "$out"/*.deb; do
    dpkg -x "$deb" "$out/root"
done
LAZYVOL_ROOT=$out/root "$src/debian/tests/smoke"

if dpkg-query -W -f='${Status}\n' lazyvol 2>/dev/null | grep -q 'ok installed'
then
    step "lazyvol is installed on this machine: not installing over it"
    exit 0
fi
if [ -d /run/systemd/system ] && [ "${LAZYVOL_CHECK_DEB_INSTALL:-}" != 1 ]
then
    step "systemd runs here, and would start lazyvold.service: not" \
         "installing (LAZYVOL_CHECK_DEB_INSTALL=1 does)"
    exit 0
fi
step "dpkg -i, systemd-analyze verify, smoke test of the installed packages"
had_user=false
getent passwd lazyvol > /dev/null && had_user=true
cleanup ()
{
    $sudo dpkg --purge lazyvol nbdkit-plugin-lazyvol > /dev/null
    $had_user || ! getent passwd lazyvol > /dev/null || $sudo userdel lazyvol
}
trap cleanup EXIT
$sudo dpkg -i "$out"/lazyvol_*.deb "$out"/nbdkit-plugin-lazyvol_*.deb
# Both units: lazyvold.service and the template lazyvold@.service (which
# systemd-analyze verifies as an instance).
units=$(dpkg -L lazyvol | grep -E '/lazyvold@?\.service$')
[ "$(echo "$units" | wc -l)" = 2 ] || { echo "check-deb: units: $units" >&2; exit 1; }
systemd-analyze verify $units > "$out/verify.log" 2>&1 ||
    { cat "$out/verify.log"; exit 1; }
if [ -s "$out/verify.log" ]; then
    cat "$out/verify.log"
    echo "check-deb: systemd-analyze verify is not clean" >&2
    exit 1
fi
getent passwd lazyvol
"$src/debian/tests/smoke"
step "passed"
