#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# ctl.py [--time] SOCKET JSON-REQUEST: send one request to a lazyvol
# control socket and print the reply line.  With --time, print
# "SECONDS REPLY": how long the request took, from the first byte sent to
# the reply's newline (connecting and the interpreter's start are not
# counted).  Exits 0 if the reply says "ok": true, 1 if it carries an
# error (printed to stderr too), 2 on transport errors.
import json
import socket
import sys
import time

args = sys.argv[1:]
timed = args[:1] == ["--time"]
if timed:
    args = args[1:]
if len(args) != 2:
    sys.exit("usage: ctl.py [--time] SOCKET JSON")
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(args[0])
    f = s.makefile("rb")
    t0 = time.monotonic()
    s.sendall(args[1].encode() + b"\n")
    line = f.readline()
    t1 = time.monotonic()
except OSError as e:
    sys.exit("ctl.py: %s: %s" % (args[0], e))
if not line:
    print("ctl.py: no reply to %s" % args[1], file=sys.stderr)
    sys.exit(2)
if timed:
    print("%.6f %s" % (t1 - t0, line.decode().strip()))
else:
    sys.stdout.write(line.decode())
reply = json.loads(line)
if not reply.get("ok"):
    print("ctl.py: %s [%s]" % (reply.get("error"), reply.get("code")),
          file=sys.stderr)
    sys.exit(1)
