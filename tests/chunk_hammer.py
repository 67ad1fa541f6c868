#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# chunk_hammer.py URI IMAGE CHUNK_SIZE CHUNKS THREADS
#
# Hammers the first CHUNKS chunks of an export that are not cached yet:
# THREADS connections each write their own 4 KiB blocks of every chunk
# while reading the whole chunk back.  Every read must show, for each
# block, either the published bytes (from IMAGE) or a value written to
# that block — never zeros or a half-filled chunk.  At the end one
# connection flushes and a new connection must see every write: none was
# lost to a fill finishing later.
import sys
import threading

import nbd

uri, image, chunk_size, chunks, nthreads = (
    sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
    int(sys.argv[5]))
BLOCK = 4096
ROUNDS = 4
with open(image, "rb") as f:
    original = f.read(chunks * chunk_size)
blocks_per_chunk = chunk_size // BLOCK
errors = []


def pattern(chunk, block, rnd):
    return bytes([(chunk * 31 + block * 7 + rnd * 13 + 1) % 251 + 1]) * BLOCK


def allowed(chunk, block):
    off = chunk * chunk_size + block * BLOCK
    return {original[off:off + BLOCK]} | {
        pattern(chunk, block, r) for r in range(ROUNDS)}


def worker(t):
    try:
        hammer(t)
    except Exception as e:   # a failed request must fail the test
        errors.append("thread %d: %s" % (t, e))


def hammer(t):
    h = nbd.NBD()
    h.connect_uri(uri)
    try:
        for rnd in range(ROUNDS):
            for c in range(chunks):
                for b in range(t, blocks_per_chunk, nthreads * 8):
                    h.pwrite(pattern(c, b, rnd),
                             c * chunk_size + b * BLOCK)
                data = bytes(h.pread(chunk_size, c * chunk_size))
                for b in range(0, blocks_per_chunk, 17):
                    got = data[b * BLOCK:(b + 1) * BLOCK]
                    if got not in allowed(c, b):
                        errors.append("thread %d: chunk %d block %d: "
                                      "unexpected bytes" % (t, c, b))
                        return
    finally:
        h.shutdown()


threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
for th in threads:
    th.start()
for th in threads:
    th.join()
if errors:
    sys.exit("\n".join(errors[:10]))

# Every block written in the last round must be there, the others
# untouched.
h = nbd.NBD()
h.connect_uri(uri)
h.flush()
for c in range(chunks):
    data = bytes(h.pread(chunk_size, c * chunk_size))
    written = set()
    for t in range(nthreads):
        written.update(range(t, blocks_per_chunk, nthreads * 8))
    for b in range(blocks_per_chunk):
        got = data[b * BLOCK:(b + 1) * BLOCK]
        off = c * chunk_size + b * BLOCK
        want = (pattern(c, b, ROUNDS - 1) if b in written
                else original[off:off + BLOCK])
        if got != want:
            sys.exit("chunk %d block %d: lost write or bad bytes" % (c, b))
h.shutdown()
print("concurrent: %d threads x %d chunks x %d rounds OK"
      % (nthreads, chunks, ROUNDS))
