#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# notify_listener.py ADDRESS LOG: play systemd's side of sd_notify(3).
# Binds a datagram socket at ADDRESS (a path, or @NAME in the abstract
# namespace), writes "bound" on stdout, then appends one line per
# notification to LOG: "pid=SENDER-PID ASSIGNMENT ...", the sender's pid
# from its kernel-checked credentials (SO_PASSCRED), as systemd reads it
# to tell the main process from its children.
import socket
import struct
import sys

address, log = sys.argv[1:3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + address[1:] if address.startswith("@") else address)
print("bound", flush=True)
with open(log, "a", buffering=1) as out:
    while True:
        msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", data[:12])[0]
        out.write("pid=%s %s\n" % (pid, " ".join(msg.decode().split("\n"))))
