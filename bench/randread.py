#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# randread.py URI OFFSETS QD: the cold random reader of run.sh.  Reads 4
# KiB at each offset listed in the file OFFSETS (one a line, in that
# order) from the NBD export URI with libnbd (python3-libnbd), QD
# requests in flight on one connection, and prints the seconds from the
# first request to the last reply.  Connecting is not timed, as a
# process start is never timed in run.sh.  A failed read is an error
# (libnbd raises it when the command is retired).
import sys
import time

import nbd

if len(sys.argv) != 4:
    sys.exit("usage: randread.py URI OFFSETS QD")
uri, offsets_path, qd = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(offsets_path) as f:
    offsets = [int(line) for line in f]

h = nbd.NBD()
h.connect_uri(uri)
inflight = []
t0 = time.monotonic()
i = 0
while i < len(offsets) or inflight:
    while i < len(offsets) and len(inflight) < qd:
        buf = nbd.Buffer(4096)
        inflight.append((h.aio_pread(buf, offsets[i]), buf))
        i += 1
    h.poll(-1)
    inflight = [(c, b) for c, b in inflight if not h.aio_command_completed(c)]
t1 = time.monotonic()
h.shutdown()
print("%.6f" % (t1 - t0))
