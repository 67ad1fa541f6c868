/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* no-openat2: run a command on which openat2(2) fails with ENOSYS, as on
 * a kernel older than 5.6, so that tests exercise the file store's
 * fallback (common/beneath.c walks a path one component at a time).
 *
 *   no-openat2 COMMAND ARGS...
 *
 * A seccomp filter answers openat2 with ENOSYS and allows every other
 * system call; it is inherited by COMMAND.  The filter matches the
 * system call number of this build's architecture only, which is the
 * one COMMAND uses.  Before running COMMAND it checks that openat2 really
 * fails, so a test cannot pass without the fallback being taken.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

int
main (int argc, char **argv)
{
  struct sock_filter code[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = sizeof code / sizeof code[0],
                             .filter = code };
  struct open_how how = { .flags = O_RDONLY };

  if (argc < 2) {
    fprintf (stderr, "usage: no-openat2 COMMAND ARGS...\n");
    return 2;
  }
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
      prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1) {
    perror ("no-openat2: seccomp");
    return 1;
  }
  if (syscall (SYS_openat2, AT_FDCWD, ".", &how, sizeof how) != -1 ||
      errno != ENOSYS) {
    fprintf (stderr, "no-openat2: the filter did not take\n");
    return 1;
  }
  execvp (argv[1], argv + 1);
  fprintf (stderr, "no-openat2: %s: %s\n", argv[1], strerror (errno));
  return 1;
}
