#!/usr/bin/env python3
# ctl.py SOCKET JSON-REQUEST: send one request to a lazyvol control
# socket and print the reply line.  Exits 0 if the reply says "ok": true,
# 1 if it carries an error (printed to stderr too), 2 on transport errors.
import json
import socket
import sys

if len(sys.argv) != 3:
    sys.exit("usage: ctl.py SOCKET JSON")
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall(sys.argv[2].encode() + b"\n")
    f = s.makefile("rb")
    line = f.readline()
except OSError as e:
    sys.exit("ctl.py: %s: %s" % (sys.argv[1], e))
if not line:
    print("ctl.py: no reply", file=sys.stderr)
    sys.exit(2)
sys.stdout.write(line.decode())
reply = json.loads(line)
if not reply.get("ok"):
    print("ctl.py: %s [%s]" % (reply.get("error"), reply.get("code")),
          file=sys.stderr)
    sys.exit(1)
