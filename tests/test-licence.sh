#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Every source file carries the licence header, and COPYING is the
# BSD-3-Clause text the headers name.  Build trees (a directory holding
# config.status), what bootstrap.sh and configure generate (build-aux/,
# config.h, libtool's m4 files) and debian/'s data files (covered by
# debian/copyright) are not sources; debian/'s scripts are.
set -eu
. "$srcdir/functions.sh"

top=$(cd "$srcdir/.." && pwd)
[ -f "$top/COPYING" ] || fail "no COPYING in $top"
grep -q 'Neither the name of the copyright holder' "$top/COPYING" ||
    fail "COPYING is not the BSD-3-Clause text"

tmp=$(make_tmpdir)
(
    cd "$top"
    find . \( -name autom4te.cache -o -name .git -o -name debian -o -name build-aux \
              -o -exec test -f '{}/config.status' \; \) -prune -o \
         -type f \( -name '*.c' -o -name '*.h' -o -name '*.sh' \
                    -o -name '*.py' -o -name '*.am' -o -name '*.ac' \
                    -o -name '*.pod' -o -name '*.m4' -o -name '*.syms' \
                    -o -name '*.fio' -o -name '*.service.in' \
                    -o -name '*.sysusers' \) \
         ! -name config.h ! -name aclocal.m4 ! -name libtool.m4 \
         ! -name 'lt*.m4' -print
    # Scripts and configuration files without a telling extension.
    for f in .ci/run completion/lazyvolctl systemd/lazyvold.conf \
             systemd/credentials debian/rules debian/lazyvol.postinst \
             debian/tests/smoke; do
        [ ! -e "$f" ] || echo "./$f"
    done
) | sort > "$tmp/files"
count=$(wc -l < "$tmp/files")
[ "$count" -ge 150 ] || fail "only $count source files found under $top"

missing=0
while read -r f; do
    # The header is in the first five lines: after a #! line if any.
    if ! head -n 5 "$top/$f" | grep -q 'SPDX-License-Identifier: BSD-3-Clause' ||
       ! head -n 5 "$top/$f" | grep -q 'Copyright (C) [0-9-]* The lazyvol Authors'
    then
        echo "no licence header: $f" >&2
        missing=$((missing + 1))
    fi
done < "$tmp/files"
[ "$missing" = 0 ] || fail "$missing of $count source files lack the licence header"
echo "licence header in all $count source files"
