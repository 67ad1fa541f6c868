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

# LV_WITH_INSTALL_DIR(OPTION, VARIABLE, DEFAULT, DEFAULT-TEXT, HELP,
#                     PKG, PKG-VARIABLE, CONSEQUENCE, [ALSO-SEARCHED],
#                     [NO-ALLOWED])
# ---------------------------------------------------------------------
# --with-OPTION=DIR: an install directory in VARIABLE (AC_SUBST), DEFAULT
# unless given; "yes" means the default, "no" is refused unless
# NO-ALLOWED (then VARIABLE is "no"), anything else must be absolute.
# Then LV_CHECK_INSTALL_DIR warns if PKG looks elsewhere.
AC_DEFUN([LV_WITH_INSTALL_DIR], [
  AC_ARG_WITH([$1], [AS_HELP_STRING([--with-$1=DIR], [$5 @<:@$4@:>@])],
    [], [with_[]m4_translit([$1], [-], [_])=yes])
  lv_dir=$with_[]m4_translit([$1], [-], [_])
  AS_CASE([$lv_dir],
    [yes], [$2=$3],
    [no], [m4_ifval([$10], [$2=no],
            [AC_MSG_ERROR([--without-$1: lazyvol needs this directory])])],
    [/*], [$2=$lv_dir],
    [AC_MSG_ERROR([--with-$1=$lv_dir: not an absolute path])])
  AC_SUBST([$2])
  AS_IF([test "x[$]$2" != xno],
    [LV_CHECK_INSTALL_DIR([$2], [$6], [$7], [--with-$1], [$8], [$9])])
])
