# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# LV_REQUIRE_PKG(VARIABLE-PREFIX, MODULES, DEBIAN-PACKAGE)
# ---------------------------------------------------------
# PKG_CHECK_MODULES, failing with a message that names the Debian package
# to install, so a missing dependency is a one-line fix for the user.
AC_DEFUN([LV_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 not found (pkg-config: $$1_PKG_ERRORS).
On Debian or Ubuntu: apt-get install $3])])
])
