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

# LV_CHECK_INSTALL_DIR(VARIABLE, PKG, PKG-VARIABLE, OPTION, CONSEQUENCE,
#                      [ALSO-SEARCHED])
# ----------------------------------------------------------------------
# Warn when the install directory VARIABLE, with ${prefix} and the like
# expanded, is neither PKG-VARIABLE of pkg-config's PKG, the directory
# where that program looks, nor one of the directories ALSO-SEARCHED.
# Nothing is said when PKG has no pkg-config file.
AC_DEFUN([LV_CHECK_INSTALL_DIR], [
  lv_want=`$PKG_CONFIG --variable=$3 $2 2>/dev/null`
  lv_saved_prefix=$prefix lv_saved_exec_prefix=$exec_prefix
  test "x$prefix" = xNONE && prefix=$ac_default_prefix
  test "x$exec_prefix" = xNONE && exec_prefix=$prefix
  lv_got=[$]$1
  for lv_i in 1 2 3 4 5; do eval lv_got=\"$lv_got\"; done
  prefix=$lv_saved_prefix exec_prefix=$lv_saved_exec_prefix
  AC_MSG_CHECKING([where $2 looks for what goes in $1])
  AC_MSG_RESULT([${lv_want:-unknown}])
  lv_found=no
  for lv_i in "$lv_want" $6; do
    test "x$lv_got" = "x$lv_i" && lv_found=yes
  done
  AS_IF([test -n "$lv_want" && test $lv_found = no],
    [AC_MSG_WARN([$1 is $lv_got, but $2 looks in $lv_want: $5.
Configure with $4=$lv_want to install there.])])
])
