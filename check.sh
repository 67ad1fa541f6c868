#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# check.sh: install what is missing (Debian or Ubuntu, with apt-get as root
# or through sudo), build lazyvol out of tree in _build/, and run the test
# suite (make check); then build the Debian packages from make dist's
# tarball and try them (tests/check-deb.sh).  The summary is the last
# thing printed; the exit status is non-zero if either failed.
set -eu
cd "$(dirname "$0")"

# Build and test dependencies.  Tests use real components: nbdkit, NBD
# clients (libnbd tools, python3-libnbd, qemu-img/qemu-io) and a local
# signature-validating S3 server (OpenStack Swift from python3-swift);
# psktool and certtool (gnutls-bin) make the keys of the TLS tests;
# debhelper, lintian and systemd (systemd-analyze, which reads the man
# pages a unit names: man-db) build and check the Debian packages.
PACKAGES="build-essential autoconf automake libtool pkg-config perl
  nbdkit nbdkit-plugin-dev libcurl4-openssl-dev libssl-dev libjson-c-dev
  libevent-dev libnbd-bin python3-libnbd qemu-utils python3-swift
  python3-boto3 curl jq socat procps util-linux util-linux-extra
  gnutls-bin debhelper lintian systemd man-db"

# shellcheck disable=SC2086
./install-deps.sh $PACKAGES

[ -x configure ] && [ configure -nt configure.ac ] || ./bootstrap.sh
mkdir -p _build
cd _build
[ -f Makefile ] || ../configure --enable-werror --enable-crash-points
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"
status=0
make -j"$jobs" check || status=$?
if [ $status != 0 ]; then
    # The failing tests' logs.
    for log in tests/*.log; do
        case $log in */test-suite.log) continue ;; esac
        if grep -q ':test-result: \(FAIL\|ERROR\)' "${log%.log}.trs" 2>/dev/null
        then
            echo "===== $log (last 60 lines)"
            tail -n 60 "$log"
        fi
    done
fi
# The Debian packages, built and tried (its log: _build/check-deb.log).
deb=FAIL
if sh ../tests/check-deb.sh . > check-deb.log 2>&1; then
    deb=PASS
else
    echo "===== check-deb.log (last 60 lines)"
    tail -n 60 check-deb.log
    [ $status != 0 ] || status=1
fi
# The summary, last.
echo "===== lazyvol test summary"
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' tests/test-suite.log || true
echo "# Debian packages (build, lintian, smoke, systemd-analyze): $deb"
exit $status
