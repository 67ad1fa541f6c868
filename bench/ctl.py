#!/usr/bin/env python3
# ctl.py SOCKET JSON-REQUEST: send one request to a lazyvol control socket
# and print "SECONDS REPLY" on one line: how long the request took, from
# the first byte sent to the reply's newline (connecting and the
# interpreter's start are not counted), then the reply.  Exits 0 if the
# reply says "ok": true, 1 if it carries an error (printed to stderr), 2
# on transport errors.
import json
import socket
import sys
import time

if len(sys.argv) != 3:
    sys.exit("usage: ctl.py SOCKET JSON")
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    f = s.makefile("rb")
    t0 = time.monotonic()
    s.sendall(sys.argv[2].encode() + b"\n")
    line = f.readline()
    t1 = time.monotonic()
except OSError as e:
    sys.exit("ctl.py: %s: %s" % (sys.argv[1], e))
if not line:
    print("ctl.py: no reply to %s" % sys.argv[2], file=sys.stderr)
    sys.exit(2)
print("%.6f %s" % (t1 - t0, line.decode().strip()))
reply = json.loads(line)
if not reply.get("ok"):
    print("ctl.py: %s: %s [%s]" % (sys.argv[2], reply.get("error"),
                                   reply.get("code")), file=sys.stderr)
    sys.exit(1)
