#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# point_in_time.py NBD-URI-PREFIX CTL-SOCKET EXPORT MIB
#
# Writes version 0 to every 64 KiB block of the first MIB MiB of EXPORT,
# then two connections keep rewriting random blocks of the first half
# (each its own blocks, so that each block has one order of versions)
# with increasing versions while a snapshot is requested.  Each block holds its version
# and index repeated, so a torn block is detected.  The snapshot (read
# back through its read-only export EXPORT@ID) must hold, for every
# block, a version that was acknowledged before the request was sent, or
# a later one whose write started before the reply came: the state at
# one instant of the request.  Prints a summary.
import json
import random
import socket
import struct
import sys
import threading
import time

import nbd

prefix, ctlsock, export, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
BLOCK = 65536
nblocks = mib * 1048576 // BLOCK
history = [[(0, 0.0, 0.0)] for _ in range(nblocks)]   # (version, start, ack)
lock = threading.Lock()
stop = threading.Event()


def payload(block, version):
    return struct.pack("<II", version, block) * (BLOCK // 8)


def connect(name):
    h = nbd.NBD()
    h.connect_uri("%s%s%s" % (prefix.split("?")[0], name,
                              "?" + prefix.split("?")[1]))
    return h


h = connect(export)
for b in range(nblocks):
    h.pwrite(payload(b, 0), b * BLOCK)
h.flush()


def writer(seed):
    h = connect(export)
    rnd = random.Random(seed)
    while not stop.is_set():
        b = 2 * rnd.randrange(nblocks // 4) + seed % 2    # own blocks: one order
        with lock:
            v = history[b][-1][0] + 1
            history[b].append((v, time.monotonic(), None))
        h.pwrite(payload(b, v), b * BLOCK)
        t = time.monotonic()
        with lock:
            for i, (ver, start, ack) in enumerate(history[b]):
                if ver == v:
                    history[b][i] = (ver, start, t)
    h.shutdown()


threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2)]
for t in threads:
    t.start()
time.sleep(0.5)
s = socket.socket(socket.AF_UNIX)
s.connect(ctlsock)
t_send = time.monotonic()
s.sendall(json.dumps({"cmd": "snapshot", "export_id": export}).encode() + b"\n")
reply = json.loads(s.makefile("rb").readline())
t_recv = time.monotonic()
assert reply["ok"] and reply["snapshot_created"], reply
time.sleep(0.3)
stop.set()
for t in threads:
    t.join()

view = connect("%s@%s" % (export, reply["snapshot_id"]))
raced = 0
for b in range(nblocks):
    data = bytes(view.pread(BLOCK, b * BLOCK))
    version, index = struct.unpack("<II", data[:8])
    if data != payload(index, version) or index != b:
        sys.exit("block %d: torn or foreign data in the snapshot" % b)
    acked = max(v for v, start, ack in history[b] if ack is not None and ack < t_send)
    started = max(v for v, start, ack in history[b] if start < t_recv)
    if not acked <= version <= started:
        sys.exit("block %d: snapshot has version %d, want %d..%d"
                 % (b, version, acked, started))
    if version != acked:
        raced += 1
writes = sum(len(hist) - 1 for hist in history)
print("point in time: %d blocks, %d writes, snapshot took %.2f s, %d blocks "
      "caught a racing write" % (nblocks, writes, t_recv - t_send, raced))
