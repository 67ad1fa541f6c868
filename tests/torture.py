#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# torture.py: a seeded random campaign of steps against lazyvol, each
# step checked against a model of what every export must hold.
#
# Short campaigns: "make check" runs tests/test-torture.sh (file store)
# and tests/test-torture-s3.sh (a local S3), about a minute each, with a
# fixed seed.  A long campaign, from the source tree after building in
# _build/ (with --enable-crash-points, as check.sh does):
#
#   /usr/bin/python3 tests/torture.py --seed random --duration 1800
#   /usr/bin/python3 tests/torture.py --seed random --duration 1800 --s3
#
# (--s3 starts a local S3 store with tests/s3-server.sh; STORE-PARAMs
# after "--" name another store, as the plugin's parameters.)  A failure
# prints the seed, the step number and the step; the same options with
# --seed S --steps N replay the campaign up to that step.  Every choice
# comes from one random.Random(seed) (each step draws from its own
# generator seeded from it, so a step's choices do not depend on how
# the steps before it went); only wall-clock timing differs, so a kill
# "at a random moment" may land elsewhere in a replay, and the checks
# accept every outcome the rules below allow.
#
# Steps (weights in Campaign.steps_table, changed with --weight): writes
# of 1 byte to 4 MiB at unaligned, aligned, chunk-crossing and
# end-of-image offsets, of random, patterned or zero data, some with
# FUA; flushes (some on another connection: the export advertises
# multi-conn); trims; zeroes (may-trim or not,
# fast or not, FUA or not); snapshots; compacts; clones (each checked
# against the snapshot it came from); deletes of snapshots; cache resets
# (no client connected); close and open; reads of snapshot views
# EXPORT@SID; hydrate with writes racing the fills; concurrent writers;
# clean restarts (of nbdkit run directly, like start_lazyvol, or of
# lazyvold --foreground, like start_lazyvold; a restart may switch
# between the two); lazyvold restarted alone (SIGUSR2 or kill -9: it
# adopts nbdkit and clients keep their connections); nbdkit killed under
# lazyvold (which restarts it); kill -9 of the whole process tree at a
# random moment (idle, during writes and flushes on two connections, a
# snapshot, a compact, a clone, a reset, a close, a start, or racing
# writers with a snapshot racing them); kills at
# the named crash points of LAZYVOL_CRASH_AT (see CRASH POINTS in
# nbdkit-lazyvol-plugin(1)), recover.after_discard after one that left a
# publish to undo; other hosts (step_takeover: a clean handover, a dead
# host's exports taken after its lease, a takeover by force from a live
# host, which must refuse writes within the lease period and cannot
# publish, a second host refused while the owner runs; the previous
# owner may come back and must get every export read-only; the taker
# may die at takeover.after_owner or takeover.after_fence); gc (a dry
# run with the day's grace, one with none, then a delete; maybe over
# the blob pieces, summary and uploads that a host which died with its
# journal would have left, planted first); on S3, store faults injected
# by tests/store-proxy (ProxyFaults) during publishes and reads of an
# export just reset.
# The seed (or --object-max) also draws the largest object lazyvol may
# write (OBJECT_MAXES, LAZYVOL_TEST_OBJECT_MAX for every host): below
# S3's, blobs are split into pieces, and publish.between_pieces is among
# the crash points.
# Three exports to start with (EXPORTS: 1 MiB, 64 KiB with a short last
# chunk, and the default 4 MiB chunks), and the clones made on the way
# (at most MAX_CLONES; older ones are retired).
#
# The model, per export (class Export):
#   - cur: what every read returns now.  Exact while no process dies.
#   - flushed: the image at the last completed FLUSH on any connection
#     (or close, clean stop, reset, or snapshot without concurrent
#     writers: after a publish, its chunks are the store's).  A FUA write
#     makes its own bytes flushed.  (The crashes are kill -9, not power
#     cuts, so the kernel keeps what it was given either way; the rules
#     checked are still the NBD ones.)
#   - pending: the writes (zeroes and whole-chunk trims included) issued
#     since then, acknowledged or not.
#   After a crash every byte must hold its flushed value or the value of
#   one of the pending writes that cover it (checked per range against
#   each candidate, then per 4 KiB block, then per byte); what is read is
#   then what cur is.  The pending writes stay candidates until the next
#   flush.  Trims zero whole chunks and leave parts of chunks alone
#   (trims below a chunk are advice, as the man page says).  A fast zero
#   refused with ENOTSUP may have zeroed some chunks of its range: each
#   chunk holds either its old bytes or zeros.  A reset makes the export
#   its last published image; a reset killed half-way leaves each byte
#   either.
#   Concurrent writers own disjoint byte ranges (pieces of the image cut
#   at random, so they share chunks) and each runs at queue depth 1, so
#   the final image does not depend on how they interleave.  When a
#   snapshot runs meanwhile, it must hold, for every writer, the state
#   after some prefix of its writes that includes every write
#   acknowledged before the request and none started after the reply;
#   and the prefixes must be one point in time: a write in the snapshot
#   implies every write (of any writer) acknowledged before it started.
#   A flush on any writer's connection makes durable every write
#   acknowledged before it was sent; the other racing writes are
#   pending.  So a crash after such a snapshot landed must keep the
#   writes flushed after it froze their chunks.
#
# Checks after every step: the ranges the step touched and a random
# sample (the whole of every export every FULL_EVERY steps and after
# restarts, kills, resets and takeovers) read back as the model says;
# each export's status (generation, head, image and chunk size, the
# dirty chunk count between what must and what may be dirty, no failed
# stop; writable, owned by the host at the model's epoch, lease valid);
# the store (after every step with the file store, which is read
# directly; after steps that change it and every STORE_EVERY steps with
# S3, read with tests/store-tool, never through the proxy): every head
# has the model's generation and snapshot, generations never go
# backwards, owner.json names the host at the model's epoch and the head
# carries that epoch (so no other host moved it), epochs never go
# backwards, every manifest a head's
# parent chain reaches and every snapshot the model holds exists, every
# blob such a manifest names exists with its size, deleted snapshots are
# gone (their blob too, unless a live manifest named it when it was
# deleted: deletes look at their own blob only), and no stray snapshot
# is left once recovery has run.  A gc took exactly the objects of
# snapshots without a manifest that no manifest names and the uploads,
# but the journal's; after it every blob that a manifest in the store
# named is still there.  Every new published snapshot
# (a reply, or a publish that landed before a kill) is checked chunk by
# chunk: its manifest's SHA-256 against the model's image at that
# snapshot, and its bytes read back through the read-only view
# EXPORT@SID.  The listing of snapshots matches the model.  At the end
# every export is published and read back by a fresh host with an empty
# cache.
import argparse
import base64
import bisect
import errno
import hashlib
import http.client
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import nbd

KiB = 1024
MiB = 1024 * 1024

# The exports every campaign starts with: (id, size, chunk size or None
# for the default 4 MiB).  t1's last chunk is short.
EXPORTS = [('t0', 20 * MiB, MiB), ('t1', 3 * MiB + 12345, 64 * KiB),
           ('t2', 12 * MiB, None)]
DEFAULT_CHUNK = 4 * MiB
MAX_CLONES = 3                  # then the oldest unused clone is retired
KEEP_IMAGES = 3                 # snapshot images kept whole per export
PENDING_MAX = 24 * MiB          # unflushed bytes before a flush is forced
PENDING_MAX_COUNT = 200
FULL_EVERY = 10                 # steps between whole-export reads
STORE_EVERY = 10                # steps between store walks (S3)
STEP_TIMEOUT = 300              # seconds before a step counts as a hang
READ_PIECE = 4 * MiB

CRASH_POINTS = ['publish.after_journal', 'publish.during_upload',
                'publish.after_blob', 'publish.after_manifest',
                'publish.after_summary', 'publish.after_head',
                'publish.after_refs', 'clone.after_manifest',
                'clone.after_summary', 'clone.after_head',
                'reset.after_meta', 'recover.after_discard']
PIECE_POINTS = ['publish.between_pieces']      # drawn when blobs split
BEFORE_HEAD = CRASH_POINTS[:5] + PIECE_POINTS
# The largest object lazyvol may write (LAZYVOL_TEST_OBJECT_MAX), drawn
# from the seed unless --object-max says: None is S3's 5 TiB (blobs are
# never split); below, a blob larger than the limit is split into pieces
# of whole chunks (1 MiB: one piece per chunk of t0, one per 4 MiB chunk
# of t2; 16 MiB: pieces of two 8 MiB parts, so crashes inside an upload
# happen inside a piece).
OBJECT_MAXES = [None, None, None, MiB, 3 * MiB, 16 * MiB]
TAKEOVER_POINTS = ['takeover.after_owner', 'takeover.after_fence']
TAKEOVERS = ['handover', 'dead', 'force', 'refused']
PART_SIZE_MIN = 8 * MiB         # publish.during_upload fires past this

_zeros = {}


def zeros(n):
    """n zero bytes, shared."""
    z = _zeros.get(n)
    if z is None:
        z = _zeros[n] = bytes(n)
    return z


def hash_hex(m, text):
    """A chunk's SHA-256 as manifest M writes it (version 1 in hex, 2 in
    base64), in hex as the model keeps it."""
    if m['version'] == 1:
        return text
    return base64.b64decode(text, validate=True).hex()


def merge_ranges(ranges):
    """Sorted, merged (offset, length) ranges."""
    out = []
    for off, n in sorted(r for r in ranges if r[1] > 0):
        if out and off <= out[-1][0] + out[-1][1]:
            o, m = out[-1]
            out[-1] = (o, max(m, off + n - o))
        else:
            out.append((off, n))
    return out


class Failure(Exception):
    """lazyvol did not do what the model says (or did not answer)."""


class CtlError(Exception):
    """A control request answered with an error."""

    def __init__(self, code, message, status=None):
        super().__init__('%s [%s]' % (message, code))
        self.code, self.message, self.status = code, message, status


class HostDied(Exception):
    """The server went away during a request."""


# ---------------------------------------------------------------- images

class Image:
    """An image as a list of chunks: immutable bytes objects shared, copy
    on write, between the images of the model (current, flushed,
    published and snapshots), with their SHA-256 computed once."""

    def __init__(self, size, cs, chunks=None, hashes=None):
        self.size, self.cs = size, cs
        self.n = (size + cs - 1) // cs
        self.chunks = list(chunks) if chunks is not None else \
            [zeros(self.clen(i)) for i in range(self.n)]
        self.hashes = list(hashes) if hashes is not None else [None] * self.n

    def clen(self, i):
        return min(self.cs, self.size - i * self.cs)

    def copy(self):
        return Image(self.size, self.cs, self.chunks, self.hashes)

    def read(self, off, n):
        out = []
        while n > 0:
            i, o = divmod(off, self.cs)
            k = min(n, self.clen(i) - o)
            out.append(self.chunks[i][o:o + k])
            off += k
            n -= k
        return b''.join(out)

    def write(self, off, data):
        p, n = 0, len(data)
        while p < n:
            i, o = divmod(off + p, self.cs)
            k = min(n - p, self.clen(i) - o)
            if k == self.clen(i):
                self.chunks[i] = bytes(data[p:p + k])
            else:
                c = bytearray(self.chunks[i])
                c[o:o + k] = data[p:p + k]
                self.chunks[i] = bytes(c)
            self.hashes[i] = None
            p += k

    def whole_chunks(self, off, n):
        """The chunks [off, off+n) covers entirely."""
        first = (off + self.cs - 1) // self.cs
        return [i for i in range(first, self.n)
                if i * self.cs + self.clen(i) <= off + n]

    def is_zero(self, i):
        c = self.chunks[i]
        return c == zeros(len(c))

    def digest(self, i):
        """SHA-256 (hex) of chunk i, None for a chunk of zeros."""
        if self.hashes[i] is None:
            self.hashes[i] = '' if self.is_zero(i) else \
                hashlib.sha256(self.chunks[i]).hexdigest()
        return self.hashes[i] or None

    def digests(self):
        return tuple(self.digest(i) for i in range(self.n))

    def same(self, other):
        return all(a is b or a == b for a, b in zip(self.chunks, other.chunks))


class Snap:
    """A published snapshot as the model knows it: its digests always,
    its image only while it is recent (KEEP_IMAGES)."""

    def __init__(self, sid, gen, kind, parent, image, cloned_from=None):
        self.sid, self.gen, self.kind, self.parent = sid, gen, kind, parent
        self.image = image.copy()
        self.digests = image.digests()
        self.cloned_from = cloned_from
        self.nonzero = sum(1 for d in self.digests if d)


class Export:
    """The model of one export (see the top of the file)."""

    def __init__(self, name, size, cs, image=None):
        self.name, self.size, self.cs = name, size, cs
        self.cur = image.copy() if image else Image(size, cs)
        self.flushed = self.cur.copy()
        self.published = self.cur.copy()
        self.pending = []           # (offset, bytes, step)
        self.gen, self.head = 0, None
        self.snaps = {}             # sid -> Snap, deleted ones included
        self.order = []             # sids, oldest first
        self.deleted = set()
        # Chunks that must be dirty (written and flushed since the last
        # publish, or written since the last flush and no crash since),
        # and those that may be (trims and zeroes, which change nothing
        # in a chunk of zeros; unflushed writes before a crash).
        self.dirty_sure, self.dirty_unflushed, self.dirty_maybe = \
            set(), set(), set()
        self.h = None               # the main NBD connection
        self.clone_of = None        # (source export, snapshot)
        self.refs_may_lag = False   # refs/current.json after a crash
        self.kept_blobs = set()     # blobs a delete kept (blob_kept)
        # The owner's epoch: learnt from the first status after a host
        # took the export (at least epoch_min, above every earlier one),
        # then fixed until the next takeover.
        self.epoch, self.epoch_min = None, 1

    @property
    def nchunks(self):
        return self.cur.n

    def chunks_of(self, off, n):
        return set(range(off // self.cs, (off + n - 1) // self.cs + 1)) \
            if n else set()

    @property
    def pending_bytes(self):
        return sum(len(d) for _, d, _ in self.pending)

    def live_snaps(self):
        return [s for s in self.order if s not in self.deleted]

    # Changes, applied once acknowledged (or once possible).
    def m_write(self, off, data, step, fua=False, sure=True):
        self.cur.write(off, data)
        self.pending.append((off, bytes(data), step))
        (self.dirty_unflushed if sure else self.dirty_maybe).update(
            self.chunks_of(off, len(data)))
        if fua:
            self.m_durable(off, data, sure)

    def m_zero(self, off, n, step, fua=False):
        self.m_write(off, zeros(n), step, fua, sure=False)

    def m_trim(self, off, n, step, fua=False):
        for i in self.cur.whole_chunks(off, n):
            self.m_write(i * self.cs, zeros(self.cur.clen(i)), step, fua,
                         sure=False)

    def m_durable(self, off, data, sure):
        """FUA: these bytes are durable, and no earlier value of them can
        come back."""
        self.flushed.write(off, data)
        if sure:
            self.dirty_sure.update(self.chunks_of(off, len(data)))
        end = off + len(data)
        kept = []
        for p_off, p_data, step in self.pending:
            p_end = p_off + len(p_data)
            if p_end <= off or p_off >= end:
                kept.append((p_off, p_data, step))
                continue
            if p_off < off:
                kept.append((p_off, p_data[:off - p_off], step))
            if p_end > end:
                kept.append((end, p_data[end - p_off:], step))
        self.pending = kept

    def m_flush(self):
        self.flushed = self.cur.copy()
        self.pending = []
        self.dirty_sure |= self.dirty_unflushed
        self.dirty_unflushed = set()

    def m_crash(self):
        self.dirty_maybe |= self.dirty_unflushed
        self.dirty_unflushed = set()
        self.h = None

    def m_clean(self):
        """Nothing is dirty: everything is the published image's."""
        self.dirty_sure, self.dirty_unflushed, self.dirty_maybe = \
            set(), set(), set()

    def m_published(self, sid, gen, kind, image, cloned_from=None):
        """A snapshot of IMAGE became the head."""
        if gen <= self.gen:
            raise Failure('%s: snapshot %s has generation %d, not after %d'
                          % (self.name, sid, gen, self.gen))
        snap = Snap(sid, gen, kind, self.head, image, cloned_from)
        self.snaps[sid] = snap
        self.order.append(sid)
        self.gen, self.head = gen, sid
        self.published = image.copy()
        self.refs_may_lag = False
        kept = [s for s in self.order if self.snaps[s].image is not None]
        for s in kept[:-KEEP_IMAGES]:
            if s != self.head:
                self.snaps[s].image = None
        return snap

    def m_published_all(self, sid, gen, kind):
        """A snapshot without concurrent writers: all of cur, now the
        store's."""
        self.m_published(sid, gen, kind, self.cur)
        self.flushed = self.cur.copy()
        self.pending = []
        self.m_clean()

    def m_reset(self):
        self.cur = self.published.copy()
        self.flushed = self.published.copy()
        self.pending = []
        self.m_clean()

    def uncertain(self):
        """The ranges a crash may have left holding another candidate."""
        return merge_ranges((off, len(d)) for off, d, _ in self.pending)


# ----------------------------------------------------------------- store

class Store:
    """The bucket, read behind lazyvol's back: the directory itself with
    the file store, tests/store-tool with S3.  Manifests never change
    once written, so they are parsed once."""

    def __init__(self, params, store_tool):
        self.backend = params.get('storage-backend',
                                  's3' if 'bucket' in params else 'file')
        self.root = params.get('export-root', 'exports')
        self.prefix = self.root + '/' if self.root else ''
        self.tool = [store_tool, '--backend', self.backend,
                     '--bucket', params['bucket']]
        if self.backend == 'file':
            self.dir = params['bucket']
        else:
            if 'endpoint-url' in params:
                self.tool += ['--endpoint-url', params['endpoint-url']]
            if 'region' in params:
                self.tool += ['--region', params['region']]
        self.manifests = {}

    def _run(self, *args, ok_missing=False):
        r = subprocess.run(self.tool + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            if ok_missing and b'[not_found]' in r.stderr:
                return None
            raise Failure('store-tool %s: %s' % (' '.join(args),
                                                 r.stderr.decode().strip()))
        return r.stdout

    def list(self):
        """{key: size} of every object under the export root."""
        out = {}
        if self.backend == 'file':
            top = os.path.join(self.dir, self.root)
            for d, dirs, files in os.walk(top):
                dirs[:] = [x for x in dirs if not x.startswith('.')]
                for f in files:
                    p = os.path.join(d, f)
                    if f.startswith('.') or os.path.islink(p) or \
                            not os.path.isfile(p):
                        continue
                    out[os.path.relpath(p, self.dir)] = os.path.getsize(p)
            return out
        for line in self._run('list', self.prefix).decode().splitlines():
            key, size = line.rsplit(' ', 1)
            if size != '-':
                out[key] = int(size)
        return out

    def get(self, key):
        """The object's bytes, None if it does not exist."""
        if self.backend == 'file':
            try:
                with open(os.path.join(self.dir, key), 'rb') as f:
                    return f.read()
            except FileNotFoundError:
                return None
        return self._run('get', key, ok_missing=True)

    def get_range(self, key, off, n):
        if self.backend == 'file':
            with open(os.path.join(self.dir, key), 'rb') as f:
                f.seek(off)
                return f.read(n)
        return self._run('get-range', key, str(off), str(n))

    def put(self, key, data):
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self._run('put', key, f.name)

    def begin_upload(self, key):
        """Start an upload of KEY and leave it, as a crash would; its id."""
        return self._run('begin-upload', key).decode().strip()

    def delete(self, key):
        if self.backend == 'file':
            os.unlink(os.path.join(self.dir, key))
        else:
            self._run('delete', key)

    def json(self, key):
        data = self.get(key)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as ex:
            raise Failure('%s does not parse: %s' % (key, ex))

    def head(self, export):
        return self.json('%s%s/volume.json' % (self.prefix, export))

    def uploads(self, prefix):
        """{(key, upload id): initiated (ms)} of the uploads in progress
        under PREFIX: S3's listing, or the file store's temporary files of
        uploads (and their mtimes)."""
        if self.backend != 'file':
            out = {}
            for line in self._run('list-uploads', prefix).decode() \
                    .splitlines():
                key, i, ms = line.split(' ')
                out[(key, i)] = int(ms)
            return out
        out = {}
        top = os.path.join(self.dir, os.path.dirname(prefix))
        for d, dirs, files in os.walk(top):
            dirs[:] = [x for x in dirs if not x.startswith('.')]
            for f in files:
                m = re.match(r'\.tmp\.(.+)\.upload\.[A-Za-z0-9]{6}$', f)
                key = os.path.relpath(os.path.join(d, m.group(1)),
                                      self.dir) if m else ''
                if key.startswith(prefix) and \
                        not os.path.islink(os.path.join(d, f)):
                    out[(key, f)] = int(os.stat(os.path.join(d, f))
                                        .st_mtime * 1000)
        return out

    def manifest_ids(self):
        """(export, snapshot) of every manifest in the store."""
        return [tuple(k[len(self.prefix):].split('/')[0:3:2])
                for k in self.list() if k.endswith('/manifest.json')]

    def manifest(self, export, sid):
        key = '%s%s/snapshots/%s/manifest.json' % (self.prefix, export, sid)
        if key not in self.manifests:
            m = self.json(key)
            if m is None:
                return None
            self.manifests[key] = m
        return self.manifests[key]


class StoreFaults:
    """No store faults: the store_fault step is never chosen (the file
    store, or --no-faults)."""

    enabled = False

    def endpoint(self, upstream):
        return upstream

    def stop(self):
        pass


# The fault kinds of tests/store-proxy (see store-proxy --help).
FAULT_KINDS = ['error', 'hang', 'delay', 'reset', 'truncate', 'corrupt-put',
               'corrupt-range', 'corrupt-doc']
FAULT_TIMEOUT = '3s'            # the hosts' timeout= under faults


class ProxyFaults(StoreFaults):
    """tests/store-proxy between the hosts and an S3 store, which the
    campaign itself reads directly to settle what a request under a
    fault did.  inject(rng) arms one to three kinds of fault, each for
    the next 1 to 3 requests it applies to, or with a probability for
    the time of the step; clear() disarms them.  A hang, or a delay past
    the hosts' timeout (FAULT_TIMEOUT), is armed for one request only:
    the lease renewals share the link, and a host that cannot renew for
    a lease period rightly stops taking writes."""

    enabled = True

    def __init__(self, binary, upstream, dirname, seed, kinds=FAULT_KINDS):
        self.binary, self.dir, self.kinds = binary, dirname, kinds
        os.makedirs(dirname, exist_ok=True)
        self.sock = os.path.join(dirname, 'ctl.sock')
        self.stats_file = os.path.join(dirname, 'stats')
        port_file = os.path.join(dirname, 'port')
        self.log = open(os.path.join(dirname, 'proxy.log'), 'ab')
        self.proc = subprocess.Popen(
            [binary, '--upstream', upstream.rsplit(':', 1)[1],
             '--port-file', port_file, '--stats', self.stats_file,
             '--control', self.sock, '--seed', str(seed),
             '--log', os.path.join(dirname, 'faults.log')],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure('store-proxy did not start')
            time.sleep(0.02)
        with open(port_file) as f:
            self.url = 'http://127.0.0.1:%s' % f.read().strip()

    def endpoint(self, upstream):
        return self.url

    def ctl(self, *cmd):
        r = subprocess.run([self.binary, 'ctl', self.sock] +
                           [str(c) for c in cmd], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise Failure('store-proxy ctl %s: %s' % (
                ' '.join(map(str, cmd)), r.stdout.decode(errors='replace')))

    def inject(self, rng, reads=False):
        """Arm faults; with READS, one of them damages ranged reads, else
        often one damages whole documents (volume.json, manifests)."""
        what = []
        pool = self.kinds
        kinds = rng.sample(pool, min(len(pool), 1 + int(rng.random() * 3)))
        aim = 'corrupt-range' if reads else \
            'corrupt-doc' if rng.random() < 0.4 else None
        if aim in pool and aim not in kinds:
            kinds[0] = aim
        for k in kinds:
            desc, once = k, k == 'hang'
            if k == 'delay':
                ms = 3500 if rng.random() < 0.3 else \
                    100 + int(rng.random() * 900)
                self.ctl('set', 'delay-ms', ms)
                desc, once = 'delay %d ms' % ms, ms == 3500
            elif k == 'error':
                status = rng.choice((500, 502, 503, 504, 429))
                self.ctl('set', 'error-status', status)
                desc = 'error %d' % status
            if once or rng.random() < 0.5:
                n = 1 if once else 1 + int(rng.random() * 3)
                self.ctl('next', n, k)
                what.append('%s x%d' % (desc, n))
            else:
                pr = 0.05 + int(rng.random() * 25) / 100
                self.ctl('set', k, pr)
                what.append('%s p=%.2f' % (desc, pr))
        return ', '.join(what)

    def clear(self):
        self.ctl('clear')

    def counts(self):
        try:
            with open(self.stats_file) as f:
                return dict((k, int(v)) for k, v in
                            (line.split() for line in f if line.strip()))
        except (OSError, ValueError):
            return {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


# ----------------------------------------------------------------- hosts

def ctl_request(path, req, timeout):
    """One request on a control socket: the reply as a dict."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b'\n')
        line = s.makefile('rb').readline()
    except OSError as ex:
        raise HostDied('%s: %s' % (req.get('cmd'), ex))
    finally:
        s.close()
    if not line:
        raise HostDied('%s: no reply' % req.get('cmd'))
    return json.loads(line)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def http_request(path, method, url, body, timeout):
    """One admin API request, as curl --unix-socket makes it."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, data,
                     {'Content-Type': 'application/json'} if data else {})
        resp = conn.getresponse()
        text = resp.read()
    except (OSError, http.client.HTTPException) as ex:
        raise HostDied('%s %s: %s' % (method, url, ex))
    finally:
        conn.close()
    try:
        reply = json.loads(text) if text else {}
    except ValueError:
        reply = {'error': text.decode(errors='replace')[:200],
                 'code': 'not_json'}
    return resp.status, reply


# Control commands as admin API requests: (method, path, body fields).
API = {
    'ping': ('GET', '/v1/health', ()),
    'list': ('GET', '/v1/exports', ()),
    'create': ('POST', '/v1/exports/create', ('export_id', 'size',
                                              'chunk_size')),
    'open': ('POST', '/v1/exports/open', ('export_id',)),
    'clone': ('POST', '/v1/exports/clone', ('export_id', 'source_export_id',
                                            'source_snapshot_id')),
    'status': ('GET', '/v1/exports/%s/status', ()),
    'snapshot': ('POST', '/v1/exports/%s/snapshot', ()),
    'compact': ('POST', '/v1/exports/%s/compact', ()),
    'reset': ('POST', '/v1/exports/%s/cache/reset', ()),
    'snapshots': ('GET', '/v1/exports/%s/snapshots', ()),
    'delete_snapshot': ('DELETE', '/v1/exports/%s/snapshots/%s', ()),
    'close': ('POST', '/v1/exports/%s/close', ()),
    'hydrate': ('POST', '/v1/exports/%s/hydrate', ()),
    'gc': ('POST', '/v1/exports/%s/gc', ('delete', 'grace_s')),
}


def proc_alive(pid):
    """Is pid a process that has not finished exiting?  A zombie has
    closed its files (and so released its locks), but the leader of a
    thread group shows as a zombie while its other threads still exit:
    it is gone when it is a zombie alone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            if f.read().rsplit(')', 1)[1].split()[0] != 'Z':
                return True
        return len(os.listdir('/proc/%d/task' % pid)) > 1
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Host:
    """One server, as a user runs it: "nbdkit -f -U SOCK lazyvol ..."
    (mode plugin, commands on its control socket) or "lazyvold serve
    --foreground" (mode daemon, commands through the admin API), with
    its own cache root.  Every process it starts carries the variable
    LAZYVOL_TORTURE_HOST=<its directory> (lazyvold passes its environment
    to its keeper and nbdkit), which is how a kill finds the whole tree,
    and only it."""

    def __init__(self, camp, root, mode):
        self.camp, self.root, self.mode = camp, root, mode
        self.cache = os.path.join(root, 'cache')
        self.nbd = os.path.join(root, 'nbd.sock')
        self.ctl = os.path.join(root, 'ctl.sock')
        self.admin = os.path.join(root, 'admin.sock')
        self.log = os.path.join(root, 'host.log')
        self.host_id = os.path.basename(root)
        self.takeover = None            # of the process started last
        self.proc = None
        self.known_pids = set()
        os.makedirs(root, exist_ok=True)

    def __str__(self):
        return '%s (%s)' % (os.path.basename(self.root), self.mode)

    def argv(self):
        p = self.camp.paths
        params = self.camp.host_store_params()
        own = [('host-id', self.host_id), ('lease', str(self.camp.args.lease))]
        if self.mode == 'plugin':
            if self.takeover:
                own.append(('takeover', self.takeover))
            return ['nbdkit', '-f', '-U', self.nbd, p.plugin,
                    'cache-root=' + self.cache, 'control=' + self.ctl] + \
                ['%s=%s' % kv for kv in own + params]
        flags = ['--%s=%s' % kv for kv in own]
        if self.takeover:
            flags.append('--takeover' if self.takeover == 'true'
                         else '--takeover=' + self.takeover)
        for k, v in params:
            if k in ('bucket', 'storage-backend', 'endpoint-url', 'region',
                     'export-root'):
                flags += ['--' + k, v]
            else:
                flags += ['--param', '%s=%s' % (k, v)]
        return [p.lazyvold, 'serve', '--foreground', '--plugin', p.plugin,
                '--cache-root', self.cache, '--listen', self.nbd,
                '--admin-sock', self.admin] + flags

    def start(self, crash_at=None, expect_crash=None, mode=None, wait=True,
              takeover=None):
        """Start and (with WAIT) wait until it serves.  With EXPECT_CRASH
        (a crash point hit while starting), return True if it died
        there.  TAKEOVER ('true' or 'force'): take the exports other hosts
        own, as the plugin's takeover= and lazyvold's --takeover do."""
        if mode:
            self.mode = mode
        self.takeover = takeover
        if self.mode == 'plugin':
            # As start_nbdkit does; lazyvold removes a stale socket
            # itself, and must not lose the one of an nbdkit it adopts.
            for s in (self.nbd, self.ctl):
                if os.path.exists(s):
                    os.unlink(s)
        env = dict(os.environ)
        env.pop('LAZYVOL_CRASH_AT', None)
        env['LAZYVOL_TORTURE_HOST'] = self.root
        if crash_at:
            env['LAZYVOL_CRASH_AT'] = crash_at
        crashes = self.crashes(expect_crash) if expect_crash else 0
        with open(self.log, 'ab') as log:
            log.write(b'=== torture step %d: start %s%s\n'
                      % (self.camp.n, self.mode.encode(),
                         (' LAZYVOL_CRASH_AT=' + crash_at).encode()
                         if crash_at else b''))
            log.flush()
            self.proc = subprocess.Popen(self.argv(), env=env,
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self.known_pids.add(self.proc.pid)
        if not wait:
            return False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if expect_crash and self.crashes(expect_crash) > crashes:
                return True
            if self.ready():
                self.remember_pids()
                if self.camp.host is self:
                    for e in self.camp.exports.values():
                        self.camp.relearn_epoch(e)
                return False
            if self.proc.poll() is not None and self.mode == 'plugin':
                if expect_crash:
                    continue        # the log line may still be on its way
                raise Failure('%s exited with status %s while starting: %s'
                              % (self, self.proc.returncode, self.tail()))
            if self.proc.poll() is not None:
                raise Failure('%s: lazyvold exited with status %s while '
                              'starting: %s' % (self, self.proc.returncode,
                                                self.tail()))
            time.sleep(0.05)
        raise Failure('%s did not become ready in 60 s: %s'
                      % (self, self.tail()))

    def ready(self):
        try:
            if self.mode == 'plugin':
                return os.path.exists(self.nbd) and \
                    ctl_request(self.ctl, {'cmd': 'ping'}, 5).get('ok')
            # Up, and done discovering the exports.
            status, h = http_request(self.admin, 'GET', '/v1/health', None, 5)
            return status == 200 and h.get('discovery', {}).get('state') in \
                ('done', 'failed', 'off', 'adopted')
        except (HostDied, ValueError):
            return False

    def crashes(self, point):
        """How many times the log says crash point POINT fired."""
        try:
            with open(self.log, 'rb') as f:
                return f.read().count(b'crash point %s: killing'
                                      % point.encode())
        except FileNotFoundError:
            return 0

    def recoveries(self):
        """How many interrupted publishes the log says were undone."""
        try:
            with open(self.log, 'rb') as f:
                return f.read().count(b' was interrupted; the head is ')
        except FileNotFoundError:
            return 0

    def tail(self, n=15):
        try:
            with open(self.log, 'rb') as f:
                lines = f.read().decode(errors='replace').splitlines()
        except FileNotFoundError:
            return '(no log)'
        return '\n    ' + '\n    '.join(lines[-n:])

    def marked_pids(self):
        mark = b'LAZYVOL_TORTURE_HOST=' + self.root.encode()
        pids = []
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/environ' % d, 'rb') as f:
                    if mark in f.read().split(b'\0'):
                        pids.append(int(d))
            except OSError:
                pass
        return pids

    def remember_pids(self):
        self.known_pids.update(self.marked_pids())

    def pids(self):
        self.remember_pids()
        return sorted(p for p in self.known_pids if proc_alive(p))

    def nbdkit_pid(self):
        if self.mode == 'plugin':
            return self.proc.pid
        return self.cmd('ping')['nbdkit_pid']

    def wait_gone(self, pids, what, timeout=60):
        deadline = time.monotonic() + timeout
        while any(proc_alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise Failure('%s: %s: processes %s still run'
                              % (self, what, [p for p in pids
                                              if proc_alive(p)]))
            time.sleep(0.02)

    def reap(self):
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise Failure('%s: pid %d did not exit'
                              % (self, self.proc.pid))

    def kill9(self, order_seed=0):
        """kill -9 of every process of the tree, in an order drawn from
        ORDER_SEED, until none is left."""
        deadline = time.monotonic() + 30
        while True:
            pids = self.pids()
            if not pids:
                break
            random.Random(order_seed).shuffle(pids)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise Failure('%s: kill -9 left %s' % (self, pids))
            time.sleep(0.01)
        self.reap()
        self.known_pids = set()

    def stop(self, then=None):
        """SIGTERM (of nbdkit, or of lazyvold which stops nbdkit): every
        export is flushed and marked cleanly shut down.  nbdkit waits for
        its clients to leave; THEN() makes them leave."""
        pids = self.pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if then:
            then()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise Failure('%s did not stop within 60 s of SIGTERM: %s'
                          % (self, self.tail()))
        if self.proc.returncode != 0:
            raise Failure('%s exited with status %d on SIGTERM: %s'
                          % (self, self.proc.returncode, self.tail()))
        self.wait_gone(pids, 'SIGTERM')
        self.known_pids = set()

    def lazyvold_alone(self, how):
        """Stop lazyvold alone (SIGUSR2, or kill -9), leaving nbdkit to
        serve, and start it again: it adopts nbdkit."""
        assert self.mode == 'daemon'
        self.proc.send_signal(signal.SIGUSR2 if how == 'usr2'
                              else signal.SIGKILL)
        self.proc.wait(timeout=60)
        if how == 'usr2' and self.proc.returncode != 0:
            raise Failure('lazyvold exited with status %d on SIGUSR2'
                          % self.proc.returncode)
        self.known_pids.discard(self.proc.pid)
        self.start(mode='daemon')

    def connect(self, name):
        h = nbd.NBD()
        h.set_export_name(name)
        try:
            h.connect_unix(self.nbd)
        except nbd.Error as ex:
            raise Failure('connect to %s on %s: %s' % (name, self, ex))
        return h

    def cmd(self, cmd, export=None, timeout=180, **body):
        """A control command; the reply, or CtlError, or HostDied."""
        if export is not None:
            body['export_id'] = export
        if self.mode == 'plugin':
            reply = ctl_request(self.ctl, dict(cmd=cmd, **body), timeout)
            if not reply.get('ok'):
                raise CtlError(reply.get('code'), reply.get('error'))
            return reply
        method, url, fields = API[cmd]
        if '%s' in url:
            args = (body.pop('export_id'),)
            if url.count('%s') == 2:
                args += (body.pop('snapshot_id'),)
            url = url % args
        payload = {k: body[k] for k in fields if k in body} if fields else None
        status, reply = http_request(self.admin, method, url, payload, timeout)
        if status // 100 != 2:
            raise CtlError(reply.get('code'), reply.get('error'), status)
        return reply


class Background:
    """FN(*ARGS) on a thread: its result, or the exception it raised."""

    def __init__(self, fn, *args, **kwargs):
        self.result, self.error = None, None

        def run():
            try:
                self.result = fn(*args, **kwargs)
            except Exception as ex:     # noqa: B902 (reported by the caller)
                self.error = ex
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join(STEP_TIMEOUT)
        if self.thread.is_alive():
            raise Failure('a request did not return after its server died')


KILL_VARIANTS = ['idle', 'writes', 'snapshot', 'compact', 'clone', 'reset',
                 'close', 'startup', 'racing']
STORE_CODES = ('store_error', 'store_unavailable', 'store_denied',
               'bad_remote_data')


class Campaign:
    def __init__(self, args, paths, store, store_params, faults):
        self.args, self.paths, self.store = args, paths, store
        self.store_params, self.faults = store_params, faults
        self.master = random.Random(args.seed)
        self.exports = {}
        self.host = None
        self.hosts_made = 0
        self.n = 0
        self.desc = 'setup'
        self.history = []
        self.stats = dict.fromkeys(
            ('steps', 'kills', 'crash_kills', 'crash_missed', 'snapshots',
             'compacts', 'clones', 'retired', 'deletes', 'resets', 'closes',
             'views', 'hydrates', 'concurrent', 'restarts', 'lazyvold_alone',
             'nbdkit_kills', 'takeovers', 'written', 'verified',
             'fast_zero_refused', 'fast_zero_partial', 'racing_snapshots',
             'landed_by_kill', 'store_faults', 'leaked_blobs',
             'orphan_clones', 'takeovers_refused', 'came_back',
             'deposed_ms_max', 'takeover_handover', 'takeover_dead',
             'takeover_force', 'gcs', 'gc_objects', 'gc_uploads',
             'gc_busy'), 0)
        # Blobs are split only with a small object limit: only then can a
        # publish die between two pieces.
        self.points = CRASH_POINTS + (PIECE_POINTS if args.object_max
                                      else [])
        self.fired = dict.fromkeys(self.points + TAKEOVER_POINTS, 0)
        self.extra = []                 # other hosts running for a while
        self.next_clone = 0
        self.ghosts = set()         # clones killed before their head
        self.max_gen = {}
        self.max_epoch = {}
        self.store_changed = True
        self.step_t0 = time.monotonic()
        self.done = False
        self.at_exit = None             # what the watchdog runs last
        self.t_start = time.monotonic()

    # ------------------------------------------------------------ hosts

    def host_store_params(self):
        out = []
        for k, v in self.store_params:
            if k == 'endpoint-url':
                v = self.faults.endpoint(v)
            elif k == 'timeout' and self.faults.enabled:
                continue
            out.append((k, v))
        if self.faults.enabled:
            out.append(('timeout', FAULT_TIMEOUT))
        return out

    def new_host(self, mode):
        root = os.path.join(self.args.dir, 'h%d' % self.hosts_made)
        self.hosts_made += 1
        return Host(self, root, mode)

    def pick_mode(self, rng):
        r = rng.random()
        if self.args.mode != 'mixed':
            return self.args.mode
        return 'plugin' if r < 0.5 else 'daemon'

    def conn(self, e):
        if e.h is None:
            e.h = self.host.connect(e.name)
        return e.h

    def close_conn(self, e):
        if e.h is not None:
            try:
                e.h.shutdown()
            except nbd.Error:
                pass
            e.h = None

    def close_all_conns(self):
        for e in self.exports.values():
            self.close_conn(e)

    def nbd(self, e, op, *args):
        try:
            return getattr(self.conn(e), op)(*args)
        except nbd.Error as ex:
            raise Failure('%s on %s: %s' % (op, e.name, ex))

    def wait_no_clients(self, name):
        """A client that has disconnected may still be closing in nbdkit."""
        deadline = time.monotonic() + 30
        while self.host.cmd('status', name)['connections'] != 0:
            if time.monotonic() > deadline:
                raise Failure('%s still has clients 30 s after they left'
                              % name)
            time.sleep(0.05)

    def kill_tree(self, order):
        """kill -9 of the host's whole process tree; every connection and
        every unflushed write is in doubt."""
        self.host.kill9(order)
        for e in self.exports.values():
            e.h = None

    def relearn_epoch(self, e, bump=False):
        """E was loaded again: taken again at a new epoch if it had been
        given back (or, with BUMP, taken from another host), else at the
        same one."""
        if e.epoch is not None:
            e.epoch_min = e.epoch + (1 if bump else 0)
        e.epoch = None

    def crash_model(self):
        for e in self.exports.values():
            e.m_crash()

    # ------------------------------------------------------------ steps

    def steps_table(self):
        daemon = self.host.mode == 'daemon'
        table = [('write', 30), ('flush', 8), ('trim', 5), ('zero', 6),
                 ('snapshot', 8), ('compact', 3), ('clone', 3),
                 ('delete_snapshot', 2), ('reset', 3), ('close_open', 3),
                 ('view', 4), ('hydrate', 2), ('concurrent', 4),
                 ('restart', 3), ('lazyvold_alone', 2 if daemon else 0),
                 ('nbdkit_kill', 2 if daemon else 0), ('kill', 5),
                 ('crash_point', 5 if self.args.crash_points else 0),
                 ('takeover', 1), ('gc', 2),
                 ('store_fault', 3 if self.faults.enabled else 0)]
        table = [(k, self.args.weights.get(k, w) if w else 0)
                 for k, w in table]
        return [(k, w) for k, w in table if w]

    def choose(self, rng):
        r = rng.random()
        for e in self.exports.values():
            if e.pending_bytes > PENDING_MAX or \
                    len(e.pending) > PENDING_MAX_COUNT:
                return 'flush', e
        table = self.steps_table()
        x = r * sum(w for _, w in table)
        for kind, w in table:
            if x < w:
                return kind, None
            x -= w
        return table[-1][0], None

    def note(self, desc):
        self.desc = desc
        self.history = self.history[-11:] + ['%d: %s' % (self.n, desc)]
        if self.args.verbose:
            print('[%5d] %s' % (self.n, desc), flush=True)

    def remark(self, text):
        self.history[-1] += ' -> ' + text
        if self.args.verbose:
            print('        -> %s' % text, flush=True)

    def touch(self, e, off, n):
        self.touched.setdefault(e.name, []).append(
            (max(0, off - 1), min(e.size, off + n + 1) - max(0, off - 1)))

    def pick_export(self, rng, pred=None):
        x = rng.random()
        names = [n for n, e in self.exports.items() if pred is None or pred(e)]
        return self.exports[names[int(x * len(names))]] if names else None

    def pick_range(self, rng, e, maxlen=4 * MiB):
        r, w, x, y = rng.random(), rng.random(), rng.random(), rng.random()
        if r < 0.1:
            n = 1 + int(x * 16)
        elif r < 0.35:
            n = 17 + int(x * 4080)
        elif r < 0.6:
            n = 4097 + int(x * (64 * KiB - 4096))
        elif r < 0.85:
            n = 64 * KiB + 1 + int(x * (MiB - 64 * KiB))
        else:
            n = MiB + 1 + int(x * (maxlen - MiB))
        n = min(n, e.size)
        if w < 0.3:                                 # anywhere, unaligned
            off = int(y * (e.size - n + 1))
        elif w < 0.45:                              # 4 KiB aligned
            off = int(y * ((e.size - n) // 4096 + 1)) * 4096
        elif w < 0.6:                               # chunk aligned
            off = int(y * ((e.size - n) // e.cs + 1)) * e.cs
        elif w < 0.85 and e.nchunks > 1 and n > 1:  # across a chunk boundary
            b = (1 + int(y * (e.nchunks - 1))) * e.cs
            off = max(0, min(b - 1 - int(x * (n - 1)), e.size - n))
        else:                                       # at the end
            off = e.size - n
        return off, n

    def make_data(self, rng, n):
        r = rng.random()
        if r < 0.5:
            return rng.randbytes(n), 'random'
        if r < 0.75:
            unit = struct.pack('<II', self.n, rng.getrandbits(32))
            return (unit * (n // 8 + 1))[:n], 'pattern'
        if r < 0.9:
            b = 1 + int(rng.random() * 255)
            return bytes([b]) * n, 'bytes 0x%02x' % b
        return zeros(n), 'zeros'

    def step_write(self, rng, e=None):
        e = e or self.pick_export(rng)
        off, n = self.pick_range(rng, e)
        data, what = self.make_data(rng, n)
        fua = rng.random() < 0.2
        self.note('write %s [%d+%d] %s%s' % (e.name, off, n, what,
                                             ' fua' if fua else ''))
        self.nbd(e, 'pwrite', data, off, nbd.CMD_FLAG_FUA if fua else 0)
        e.m_write(off, data, self.n, fua)
        self.touch(e, off, n)
        self.stats['written'] += n

    def step_flush(self, rng, e=None):
        """A flush, on the writer's connection or on another one: the
        export advertises multi-conn, so either covers every write."""
        forced = e is not None
        e = e or self.pick_export(rng)
        other = rng.random() < 0.3
        self.note('flush %s%s%s' % (e.name, ' on another connection'
                                    if other else '',
                                    ' (%d unflushed writes, %d bytes)'
                                    % (len(e.pending), e.pending_bytes)
                                    if forced else ''))
        if other:
            h = self.host.connect(e.name)
            try:
                h.flush()
                h.shutdown()
            except nbd.Error as ex:
                raise Failure('flush on a second connection: %s' % ex)
        else:
            self.nbd(e, 'flush')
        e.m_flush()

    def chunk_run(self, rng, e):
        k = int(rng.random() * e.nchunks)
        cnt = 1 + int(rng.random() * min(4, e.nchunks - k))
        return k * e.cs, min(cnt * e.cs, e.size - k * e.cs)

    def step_trim(self, rng, _=None):
        e = self.pick_export(rng)
        off, n = self.chunk_run(rng, e) if rng.random() < 0.5 else \
            self.pick_range(rng, e)
        fua = rng.random() < 0.2
        self.note('trim %s [%d+%d]%s' % (e.name, off, n,
                                         ' fua' if fua else ''))
        self.nbd(e, 'trim', n, off, nbd.CMD_FLAG_FUA if fua else 0)
        e.m_trim(off, n, self.n, fua)
        self.touch(e, off, n)

    def step_zero(self, rng, _=None):
        e = self.pick_export(rng)
        off, n = self.chunk_run(rng, e) if rng.random() < 0.4 else \
            self.pick_range(rng, e)
        no_hole, fast, fua = (rng.random() < 0.3, rng.random() < 0.3,
                              rng.random() < 0.15)
        flags = (nbd.CMD_FLAG_NO_HOLE if no_hole else 0) | \
            (nbd.CMD_FLAG_FAST_ZERO if fast else 0) | \
            (nbd.CMD_FLAG_FUA if fua else 0)
        self.note('zero %s [%d+%d]%s%s%s' % (
            e.name, off, n, ' no-hole' if no_hole else ' may-trim',
            ' fast' if fast else '', ' fua' if fua else ''))
        self.touch(e, off, n)
        try:
            self.conn(e).zero(n, off, flags)
        except nbd.Error as ex:
            if not fast or ex.errnum != errno.ENOTSUP:
                raise Failure('zero on %s: %s' % (e.name, ex))
            self.fast_zero_refused(e, off, n)
            return
        e.m_zero(off, n, self.n, fua)

    def fast_zero_refused(self, e, off, n):
        """A fast zero refused (it would need a fetch) may have zeroed the
        chunks before the one it stopped at: each part of a chunk holds
        its old bytes or zeros."""
        self.stats['fast_zero_refused'] += 1
        old, got = e.cur.read(off, n), self.read(e, off, n)
        zeroed = []
        p = off
        while p < off + n:
            q = min(off + n, (p // e.cs + 1) * e.cs)
            g = got[p - off:q - off]
            if g == zeros(q - p) and g != old[p - off:q - off]:
                zeroed.append(p // e.cs)
            elif g != old[p - off:q - off]:
                raise Failure('%s: a refused fast zero left chunk %d [%d+%d] '
                              'neither as it was nor zero'
                              % (e.name, p // e.cs, p, q - p))
            p = q
        self.remark('refused (ENOTSUP)%s' % (', chunks %s zeroed' % zeroed
                                            if zeroed else ''))
        if zeroed:
            self.stats['fast_zero_partial'] += 1
        e.pending.append((off, zeros(n), self.n))
        e.dirty_maybe |= e.chunks_of(off, n)
        e.cur.write(off, got)

    def step_snapshot(self, rng, _=None, kind='snapshot'):
        e = self.pick_export(rng)
        self.note('%s %s' % (kind, e.name))
        self.after_publish(e, self.host.cmd(kind, e.name),
                           'base' if kind == 'compact' else 'delta')

    def step_compact(self, rng, _=None):
        self.step_snapshot(rng, kind='compact')

    def after_publish(self, e, r, kind):
        """The reply of a snapshot or compact without concurrent writers."""
        if not r.get('snapshot_created', True):
            if e.dirty_sure or e.dirty_unflushed:
                raise Failure('%s: no snapshot created, but chunks %s were '
                              'written since the last one' % (
                                  e.name, sorted(e.dirty_sure |
                                                 e.dirty_unflushed)[:10]))
            if not e.cur.same(e.published):
                raise Failure('%s: no snapshot created, but the image is not '
                              'the published one' % e.name)
            if r['generation'] != e.gen or r.get('snapshot_id') != e.head:
                raise Failure('%s: no snapshot created, but the reply names '
                              'generation %s (%s), not %d (%s)'
                              % (e.name, r['generation'],
                                 r.get('snapshot_id'), e.gen, e.head))
            e.m_clean()
            self.remark('nothing to publish')
            return
        if kind == 'delta' and not (e.dirty_sure or e.dirty_unflushed or
                                    e.dirty_maybe):
            raise Failure('%s: a snapshot was published with nothing written'
                          % e.name)
        if r['generation'] != e.gen + 1:
            raise Failure('%s: the publish has generation %d, after %d'
                          % (e.name, r['generation'], e.gen))
        e.m_published_all(r['snapshot_id'], r['generation'], kind)
        self.new_snap(e, r['snapshot_id'])
        self.stats['compacts' if kind == 'base' else 'snapshots'] += 1
        self.remark('generation %d, %s' % (e.gen, e.head))

    def new_snap(self, e, sid):
        self.to_verify.append((e.name, sid))
        self.store_changed = True
        self.list_check.add(e.name)

    def step_clone(self, rng, _=None):
        src = self.pick_export(rng, lambda x: x.gen > 0)
        which, retire = rng.random(), rng.random() < 0.5
        if src is None:
            self.note('clone: nothing is published yet')
            return
        live = src.live_snaps()
        sid = src.head if which < 0.5 else live[int((which - 0.5) * 2 *
                                                    len(live))]
        name = 'c%d' % self.next_clone
        self.next_clone += 1
        self.note('clone %s from %s@%s%s' % (name, src.name, sid,
                                             ' (current)' if sid == src.head
                                             else ''))
        clones = [x for x in self.exports.values() if x.clone_of]
        if len(clones) >= MAX_CLONES or (retire and clones):
            self.retire_clone(src.name)
        body = {'source_export_id': src.name}
        if which >= 0.5:
            body['source_snapshot_id'] = sid
        r = self.host.cmd('clone', name, **body)
        if r['snapshot_generation'] != 1 or r['dirty_chunks'] != 0:
            raise Failure('clone %s: generation %s, %s dirty chunks'
                          % (name, r['snapshot_generation'],
                             r['dirty_chunks']))
        self.add_clone(name, src, sid, r['snapshot_id'])

    def add_clone(self, name, src, sid, new_sid):
        image = self.snap_image(src, src.snaps[sid])
        e = Export(name, src.size, src.cs, image)
        e.clone_of = (src.name, sid)
        e.m_published(new_sid, 1, 'clone', image, cloned_from=(src.name, sid))
        self.exports[name] = e
        self.new_snap(e, new_sid)
        self.full.add(name)     # it must equal the snapshot it came from
        self.stats['clones'] += 1

    def snap_image(self, e, snap):
        """The image of a snapshot: the model's if kept, else read through
        its view and checked against the model's digests."""
        if snap.image is not None:
            return snap.image
        img = Image(e.size, e.cs)
        h = self.host.connect('%s@%s' % (e.name, snap.sid))
        for i in range(img.n):
            data = h.pread(img.clen(i), i * e.cs)
            self.check_digest(e, snap, i, data)
            img.write(i * e.cs, data)
        h.shutdown()
        self.close_view(e.name, snap.sid)
        return img

    def blob_owners_used(self):
        """Exports whose blobs a live manifest of another export names."""
        used = set()
        for x in self.exports.values():
            for sid in x.live_snaps():
                m = self.store.manifest(x.name, sid)
                for b in (m or {}).get('blobs', []):
                    owner = b['key'].split('/')[0]
                    if owner != x.name:
                        used.add(owner)
        return used

    def retire_clone(self, keep=None):
        """Close the oldest clone no other export reads from (nor is KEEP),
        and remove it from the store and the cache, as an admin would
        (rm): campaigns would otherwise pile up exports."""
        used = self.blob_owners_used() | {keep}
        for x in self.exports.values():
            if x.clone_of and x.name not in used:
                break
        else:
            return
        self.close_conn(x)
        self.wait_no_clients(x.name)
        for s in x.snaps:
            self.close_view(x.name, s)
        self.host.cmd('close', x.name)
        prefix = '%s%s/' % (self.store.prefix, x.name)
        for key in self.store.list():
            if key.startswith(prefix):
                self.store.delete(key)
        for d in os.listdir(self.host.cache):
            if d == x.name or d.startswith(x.name + '@'):
                shutil.rmtree(os.path.join(self.host.cache, d))
        del self.exports[x.name]
        self.max_gen.pop(x.name, None)
        self.store_changed = True
        self.stats['retired'] += 1
        self.remark('retired %s' % x.name)

    def close_view(self, name, sid):
        """Unload a view (our client may still be closing in nbdkit)."""
        view = '%s@%s' % (name, sid)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.host.cmd('close', view)
                return
            except CtlError as ex:
                if ex.code == 'not_found':
                    return
                if ex.code != 'busy' or time.monotonic() > deadline:
                    raise Failure('close %s: %s' % (view, ex))
            time.sleep(0.05)

    def step_delete_snapshot(self, rng, _=None):
        e = self.pick_export(rng, lambda x: any(s != x.head
                                                for s in x.live_snaps()))
        x, current = rng.random(), rng.random() < 0.2
        if e is None:
            self.note('delete_snapshot: no snapshot but current ones')
            return
        if current:
            self.note('delete the current snapshot %s@%s (refused)'
                      % (e.name, e.head))
            try:
                self.host.cmd('delete_snapshot', e.name, snapshot_id=e.head)
            except CtlError as ex:
                if ex.code != 'busy':
                    raise Failure('deleting the current snapshot: %s' % ex)
                return
            raise Failure('the current snapshot %s of %s was deleted'
                          % (e.head, e.name))
        cands = [s for s in e.live_snaps() if s != e.head]
        sid = cands[int(x * len(cands))]
        self.note('delete snapshot %s@%s' % (e.name, sid))
        m = self.store.manifest(e.name, sid)
        # Its own blob's pieces (a clone has none).
        own = [b['key'] for b in m['blobs'] if b['key'].startswith(
            '%s/snapshots/%s/' % (e.name, sid))]
        # Every manifest in the store counts, the orphan of a clone killed
        # before its head too; each piece is kept on its own terms.
        others = {b['key'] for y, s in self.store.manifest_ids()
                  if (y, s) != (e.name, sid)
                  for b in (self.store.manifest(y, s) or {}).get('blobs',
                                                                 [])}
        kept = [k for k in own if k in others]
        r = self.host.cmd('delete_snapshot', e.name, snapshot_id=sid)
        e.deleted.add(sid)
        if r.get('blob_kept'):
            e.kept_blobs |= {self.store.prefix + k for k in kept}
        self.close_view(e.name, sid)
        if own and r.get('blob_kept') != bool(kept):
            raise Failure('%s@%s deleted: blob_kept is %s, but %s'
                          % (e.name, sid, r.get('blob_kept'),
                             'a live manifest names its blob' if kept else
                             'no live manifest names its blob'))
        self.remark('blob kept' if kept else 'blob removed' if own else
                    'no blob of its own')
        self.store_changed = True
        self.list_check.add(e.name)
        self.stats['deletes'] += 1

    def step_gc(self, rng, _=None):
        """gc of an export, maybe over what a host that died with its
        journal would have left (planted here): with the day's grace a
        dry run keeps everything (all of it is new); with no grace a dry
        run lists exactly the objects of snapshots without a manifest that
        no manifest names, and the export's uploads in progress, but the
        journal's snapshot's, changing nothing; then "delete" removes and
        aborts the same, and only the journal's uploads are left.
        Afterwards every blob that a manifest in the store names is still
        there, and the export and one of its snapshots, through a view
        loaded afresh, read back."""
        e = self.pick_export(rng)
        x, plant = rng.random(), rng.random() < 0.7
        sids = ['%012x7%019x' % (int(time.time() * 1000) - 1000,
                                 rng.getrandbits(76)) for _ in range(2)]
        self.note('gc %s: dry runs, then a delete with no grace%s' % (
            e.name, ', over what a host that lost its journal leaves'
            if plant else ''))
        pre = self.store.prefix
        folder = '%s%s/snapshots/' % (pre, e.name)
        if plant:
            # A publish whose host died with its journal: two pieces and
            # a summary, and the upload of the next; and one that died
            # writing its manifest.
            self.store.put(folder + sids[0] + '/delta.blob', b'x' * 1000)
            self.store.put(folder + sids[0] + '/delta.1.blob', b'y' * 10)
            self.store.put(folder + sids[0] + '/summary.json', b'{}')
            self.store.begin_upload(folder + sids[0] + '/delta.2.blob')
            self.store.begin_upload(folder + sids[1] + '/manifest.json')
            # S3 rounds an upload's time up to a second: until then it is
            # young even with no grace.
            t = max(self.store.uploads(folder).values())
            while time.time() * 1000 <= t:
                time.sleep(0.05)
        busy = self.journaled(e)
        named = self.named_blobs()
        keys0 = self.store.list()
        want = self.gc_garbage(e, busy, named)
        uploads = {(k[len(pre):], i) for k, i in self.store.uploads(folder)
                   if k[len(folder):].split('/')[0] != busy}
        r = self.host.cmd('gc', e.name)
        if r['objects'] or r['uploads'] or r['unexpected'] or \
                r['young'] < len(want) + len(uploads) or not r['dry_run']:
            raise Failure('gc %s within the grace period: %s (the garbage: '
                          '%s, %s)' % (e.name, r, sorted(want),
                                       sorted(uploads)))
        for delete in (False, True):
            r = self.host.cmd('gc', e.name, grace_s=0, delete=delete)
            got = {o['key'] for o in r['objects']}
            got_up = {(u['key'], u['upload_id']) for u in r['uploads']}
            if got != want or got_up != uploads or r['unexpected'] or \
                    r['dry_run'] == delete or any(
                        o['deleted'] != delete
                        for o in r['objects'] + r['uploads']):
                raise Failure('gc %s%s: %s, not the garbage: %s, uploads %s'
                              % (e.name, ' (delete)' if delete else '', r,
                                 sorted(want), sorted(uploads)))
        left = {(k[len(pre):], i) for k, i in self.store.uploads(folder)
                if k[len(folder):].split('/')[0] != busy}
        keys = self.store.list()
        gone = [k for k in want if pre + k in keys]
        if gone or left:
            raise Failure('gc %s deleted, but left %s and uploads %s'
                          % (e.name, gone, sorted(left)))
        # (A manifest may name a blob gone before: the orphan of a clone
        # killed before its head names its source's, which a retired
        # export took with it.)
        lost = sorted(k for k in named if k in keys0 and k not in keys)
        if lost:
            raise Failure('gc %s deleted %s, which manifests name' % (
                e.name, lost))
        self.stats['gcs'] += 1
        self.stats['gc_objects'] += len(want)
        self.stats['gc_uploads'] += len(got_up)
        self.stats['gc_busy'] += r['busy']
        self.remark('%d objects, %d uploads; %d busy' % (
            len(want), len(got_up), r['busy']))
        self.store_changed = True
        self.full.add(e.name)
        # A snapshot read from the store, through a view loaded afresh
        # (a view's cache goes when it is unloaded).
        live = e.live_snaps()
        if live:
            snap = e.snaps[live[int(x * len(live))]]
            self.close_view(e.name, snap.sid)
            self.read_view(e, snap)
            self.close_view(e.name, snap.sid)

    def named_blobs(self):
        """The keys of the blobs that the manifests in the store name
        (of any export, a clone's killed before its head too)."""
        return {self.store.prefix + b['key']
                for y, s in self.store.manifest_ids()
                for b in (self.store.manifest(y, s) or {}).get('blobs', [])}

    def gc_garbage(self, e, busy, named):
        """What gc with no grace must take in E's snapshots folder: the
        summaries and blobs of snapshots without a manifest, but BUSY's
        (the journal's), and but the blobs NAMED."""
        pre = self.store.prefix
        folder = '%s%s/snapshots/' % (pre, e.name)
        keys = [k[len(folder):] for k in self.store.list()
                if k.startswith(folder)]
        with_manifest = {k.split('/')[0] for k in keys
                         if k.endswith('/manifest.json')}
        out = set()
        for k in keys:
            sid, name = k.split('/', 1)
            rel = '%s/snapshots/%s' % (e.name, k)
            if sid in with_manifest or sid == busy or pre + rel in named:
                continue
            if name == 'summary.json' or re.match(
                    r'(delta|base)(\.[1-9][0-9]*)?\.blob$', name):
                out.add(rel)
        return out

    def step_reset(self, rng, _=None):
        """A reset, then maybe a fast zero while nothing is cached: one
        of a part of a chunk the store holds needs a fetch, so it is
        refused with ENOTSUP."""
        e = self.pick_export(rng)
        fast = rng.random() < 0.5
        off, n = self.pick_range(rng, e)
        self.note('reset %s%s' % (e.name, ', then a fast zero [%d+%d]'
                                  % (off, n) if fast else ''))
        self.close_conn(e)
        self.wait_no_clients(e.name)
        r = self.host.cmd('reset', e.name)
        if r['dirty_chunks'] or r['resident_chunks']:
            raise Failure('%s after a reset: %d dirty and %d resident chunks'
                          % (e.name, r['dirty_chunks'], r['resident_chunks']))
        e.m_reset()
        self.full.add(e.name)
        self.stats['resets'] += 1
        if fast:
            self.touch(e, off, n)
            try:
                self.conn(e).zero(n, off, nbd.CMD_FLAG_FAST_ZERO)
            except nbd.Error as ex:
                if ex.errnum != errno.ENOTSUP:
                    raise Failure('fast zero on %s: %s' % (e.name, ex))
                self.fast_zero_refused(e, off, n)
                return
            e.m_zero(off, n, self.n)

    def step_close_open(self, rng, _=None):
        e = self.pick_export(rng)
        probe = rng.random() < 0.5
        self.note('close and open %s' % e.name)
        self.close_conn(e)
        self.wait_no_clients(e.name)
        dirty = self.host.cmd('status', e.name)['dirty_chunks']
        self.host.cmd('close', e.name)
        # Closed, it is given back unless it holds unpublished writes.
        rec = self.store.json('%s%s/owner.json' % (self.store.prefix, e.name))
        if (rec['host_id'] is None) != (dirty == 0):
            raise Failure('%s closed with %d dirty chunks: owner.json names '
                          '%s' % (e.name, dirty, rec['host_id']))
        self.relearn_epoch(e)
        if probe:
            try:
                self.host.cmd('status', e.name)
                raise Failure('%s is still loaded after close' % e.name)
            except CtlError as ex:
                if ex.code != 'not_found':
                    raise Failure('status of a closed export: %s' % ex)
        self.host.cmd('open', e.name)
        e.m_flush()                     # close flushes
        self.full.add(e.name)
        self.stats['closes'] += 1

    def step_view(self, rng, _=None):
        e = self.pick_export(rng, lambda x: x.live_snaps())
        x, close, whole = rng.random(), rng.random() < 0.7, rng.random() < 0.5
        if e is None:
            self.note('view: nothing is published yet')
            return
        live = e.live_snaps()
        snap = e.snaps[live[int(x * len(live))]]
        chunks = None if whole else sorted({int(rng.random() * e.nchunks)
                                            for _ in range(3)})
        self.note('read view %s@%s (%s)' % (e.name, snap.sid, 'whole' if whole
                                           else 'chunks %s' % chunks))
        self.read_view(e, snap, chunks)
        if close:
            self.close_view(e.name, snap.sid)
        self.stats['views'] += 1

    def step_hydrate(self, rng, _=None):
        e = self.pick_export(rng)
        writes = []
        for _ in range(int(rng.random() * 5)):
            off, n = self.pick_range(rng, e, MiB)
            writes.append((off, self.make_data(rng, n)[0]))
        self.note('hydrate %s with %d racing writes' % (e.name, len(writes)))
        self.host.cmd('hydrate', e.name)
        for off, data in writes:
            self.nbd(e, 'pwrite', data, off, 0)
            e.m_write(off, data, self.n)
            self.touch(e, off, len(data))
            self.stats['written'] += len(data)
        deadline = time.monotonic() + 120
        while self.host.cmd('status', e.name)['operation_state'] == \
                'hydrating':
            if time.monotonic() > deadline:
                raise Failure('%s: hydrate still runs after 120 s' % e.name)
            time.sleep(0.05)
        self.full.add(e.name)
        self.stats['hydrates'] += 1

    # ------------------------------------------------ concurrent writers

    def plan_writers(self, rng, e):
        """Two or three writers, each owning pieces of the image (cut at
        random, so writers share chunks): writes in their own pieces,
        and now and then a flush."""
        nw = 2 + int(rng.random() * 2)
        cuts = sorted({1 + int(rng.random() * (e.size - 1))
                       for _ in range(nw * (1 + int(rng.random() * 6)))})
        bounds = [0] + cuts + [e.size]
        pieces = [(a, b - a) for a, b in zip(bounds, bounds[1:])]
        if len(pieces) < nw:
            pieces = [(w * (e.size // nw), e.size // nw) for w in range(nw)]
        own = [pieces[w::nw] for w in range(nw)]
        plans = []
        for w in range(nw):
            ops = []
            for _ in range(6 + int(rng.random() * 19)):
                if rng.random() < 0.08:
                    ops.append({'op': 'flush'})
                    continue
                po, pn = own[w][int(rng.random() * len(own[w]))]
                cap = (16, 4096, 128 * KiB)[int(rng.random() * 3)]
                n = 1 + int(rng.random() * min(pn, cap))
                off = po + int(rng.random() * (pn - n + 1))
                ops.append({'op': 'write', 'off': off,
                            'data': self.make_data(rng, n)[0],
                            'fua': rng.random() < 0.1})
            for op in ops:
                op['t0'] = op['t1'] = None      # sent, acknowledged
            plans.append(ops)
        return plans

    def run_writers(self, e, plans, during=None):
        """Each writer on its own connection, at queue depth 1.  DURING()
        runs once every writer has done a third of its plan.  Returns the
        errors (time, message) and what DURING returned."""
        handles = [self.host.connect(e.name) for _ in plans]
        done, errors, cond = [0] * len(plans), [], threading.Condition()

        def writer(w):
            h = handles[w]
            try:
                for i, op in enumerate(plans[w]):
                    op['t0'] = time.monotonic()
                    if op['op'] == 'flush':
                        h.flush()
                    else:
                        h.pwrite(op['data'], op['off'],
                                 nbd.CMD_FLAG_FUA if op['fua'] else 0)
                    op['t1'] = time.monotonic()
                    with cond:
                        done[w] = i + 1
                        cond.notify_all()
            except Exception as ex:     # noqa: B902 (the caller judges)
                with cond:
                    errors.append((time.monotonic(),
                                   'writer %d: %s' % (w, ex)))
                    cond.notify_all()

        threads = [threading.Thread(target=writer, args=(w,), daemon=True)
                   for w in range(len(plans))]
        for t in threads:
            t.start()
        result = None
        if during:
            with cond:
                cond.wait_for(lambda: errors or all(
                    d >= max(1, len(p) // 3) for d, p in zip(done, plans)),
                    timeout=60)
            result = during()
        for t in threads:
            t.join(STEP_TIMEOUT)
        for h in handles:
            try:
                h.shutdown()
            except nbd.Error:
                pass
        return errors, result

    def settle_writers(self, e, plans):
        """The model after the writers: cur holds every write sent (their
        regions are disjoint, so their order does not matter).  A flush
        acknowledged on any connection made durable every write
        acknowledged before it was sent; the other writes are pending.
        Returns the image before them and the time of that flush."""
        base = e.cur.copy()
        t_flush = max((op['t0'] for ops in plans for op in ops
                       if op['op'] == 'flush' and op['t1'] is not None),
                      default=None)
        if t_flush is not None:         # it covers what came before too
            e.m_flush()
        for ops in plans:
            for op in ops:
                if op['op'] != 'write' or op['t0'] is None:
                    continue
                off, data = op['off'], op['data']
                chunks = e.chunks_of(off, len(data))
                e.cur.write(off, data)
                if t_flush is not None and op['t1'] is not None and \
                        op['t1'] < t_flush:
                    e.flushed.write(off, data)
                    e.dirty_sure |= chunks
                else:
                    e.pending.append((off, data, self.n))
                    (e.dirty_unflushed if op['t1'] else e.dirty_maybe).update(
                        chunks)
                self.touch(e, off, len(data))
                self.stats['written'] += len(data)
        return base, t_flush

    def step_concurrent(self, rng, _=None):
        """Writers racing each other, with a snapshot racing them, or not."""
        e = self.pick_export(rng)
        with_snap = rng.random() < 0.5
        plans = self.plan_writers(rng, e)
        self.note('%d concurrent writers on %s (%s operations)%s'
                  % (len(plans), e.name, '+'.join(str(len(p)) for p in plans),
                     ' with a snapshot' if with_snap else ''))

        def snapshot():
            t_send = time.monotonic()
            try:
                reply = self.host.cmd('snapshot', e.name)
            except CtlError as ex:
                raise Failure('snapshot during writes: %s' % ex)
            return t_send, reply, time.monotonic()

        errors, result = self.run_writers(e, plans,
                                          snapshot if with_snap else None)
        if errors:
            raise Failure('; '.join(m for _, m in errors))
        base, t_flush = self.settle_writers(e, plans)
        self.stats['concurrent'] += 1
        if with_snap:
            t_send, reply, t_recv = result
            if not reply['snapshot_created']:
                raise Failure('%s: no snapshot created after acknowledged '
                              'writes' % e.name)
            self.check_racing_snapshot(e, base, plans, t_send, t_recv,
                                       reply['snapshot_id'],
                                       reply['generation'], t_flush)

    def check_racing_snapshot(self, e, base, plans, t_send, t_end, sid, gen,
                              t_flush, killed=False):
        """Snapshot SID, requested at T_SEND and replied (or killed) by
        T_END, is one instant of the racing writes (see the top of the
        file); it becomes the model's published image."""
        snap = self.read(e, 0, e.size, name='%s@%s' % (e.name, sid))
        self.close_view(e.name, sid)
        writes = [[op for op in ops if op['op'] == 'write'] for ops in plans]
        matches = []
        for w, ws in enumerate(writes):
            lo = sum(1 for op in ws if op['t1'] is not None and
                     op['t1'] < t_send)
            hi = sum(1 for op in ws if op['t0'] is not None and
                     op['t0'] < t_end)
            ranges = merge_ranges((op['off'], len(op['data'])) for op in ws)
            starts = [o for o, _ in ranges]
            state = [bytearray(base.read(o, n)) for o, n in ranges]
            ok = []
            for j in range(len(ws) + 1):
                if j:
                    off, d = ws[j - 1]['off'], ws[j - 1]['data']
                    k = bisect.bisect_right(starts, off) - 1
                    state[k][off - starts[k]:off - starts[k] + len(d)] = d
                if lo <= j <= hi and all(snap[o:o + n] == state[k]
                                         for k, (o, n) in enumerate(ranges)):
                    ok.append(j)
            if not ok:
                raise Failure('%s@%s: writer %d\'s bytes are not its state '
                              'after any of its writes %d..%d (of %d): the '
                              'snapshot is not of the instant of the request'
                              % (e.name, sid, w, lo, hi, len(ws)))
            matches.append(ok)

        def one_instant(c):
            # A write in the snapshot implies every write acknowledged
            # before it started.
            for k, ws in enumerate(writes):
                if c[k]:
                    start = ws[c[k] - 1]['t0']
                    for i, wi in enumerate(writes):
                        if c[i] < sum(1 for op in wi if op['t1'] is not None
                                      and op['t1'] < start):
                            return False
            return True

        combo = next((c for c in itertools.islice(
            itertools.product(*matches), 100000) if one_instant(c)), None)
        if combo is None:
            raise Failure('%s@%s: each writer\'s part is some state (prefixes '
                          '%s), but together they are not one instant'
                          % (e.name, sid, matches))
        image = base.copy()
        sure, later, maybe = set(), set(), set()
        for w, ws in enumerate(writes):
            for op in ws[:combo[w]]:
                image.write(op['off'], op['data'])
            # Writes that change nothing make the prefix ambiguous.
            for j, op in enumerate(ws):
                chunks = e.chunks_of(op['off'], len(op['data']))
                if j < min(matches[w]):
                    continue
                if j < max(matches[w]):
                    maybe |= chunks
                elif t_flush is not None and op['t1'] is not None and \
                        op['t1'] < t_flush:
                    sure |= chunks
                else:
                    later |= chunks
        self.compare(e, 0, snap, image.read(0, e.size), 'snapshot %s' % sid)
        e.m_published(sid, gen, 'delta', image)
        # Chunks written after the freeze stay dirty; the rest is published.
        # After a crash, recovery cleans the chunks whose bytes are the
        # snapshot's, which may be more.
        e.dirty_sure, e.dirty_unflushed, e.dirty_maybe = sure, later, maybe
        if killed:
            e.dirty_maybe |= sure | later
            e.dirty_sure, e.dirty_unflushed = set(), set()
        self.new_snap(e, sid)
        self.stats['snapshots'] += 1
        self.stats['racing_snapshots'] += 1
        self.remark('snapshot %s holds writes %s%s; chunks %s stay dirty' % (
            sid, list(combo), ' (or %s)' % matches if any(
                len(m) > 1 for m in matches) else '', sorted(sure | later)))

    # ------------------------------------------------ restarts and kills

    def after_restart(self):
        self.store_changed = True
        for e in self.exports.values():
            self.full.add(e.name)
            self.list_check.add(e.name)

    def step_restart(self, rng, _=None):
        mode = self.pick_mode(rng)
        keep = rng.random() < 0.3
        self.note('clean restart of %s as %s%s' % (
            self.host, mode, ', clients connected' if keep else ''))
        if not keep:
            self.close_all_conns()
        # nbdkit 1.32 waits, after SIGTERM, for its clients to disconnect
        # (or to send a request, which fails): they leave a moment later.
        self.host.stop(then=lambda: (time.sleep(0.1), self.close_all_conns()))
        for e in self.exports.values():
            e.m_flush()
        self.host.start(mode=mode)
        self.after_restart()
        self.stats['restarts'] += 1

    def step_lazyvold_alone(self, rng, _=None):
        how = 'usr2' if rng.random() < 0.5 else 'kill'
        self.note('restart lazyvold alone (%s)' % ('SIGUSR2' if how == 'usr2'
                                                   else 'kill -9'))
        before = self.host.nbdkit_pid()
        self.host.lazyvold_alone(how)
        health = self.host.cmd('ping')
        if not health.get('adopted') or health.get('nbdkit_pid') != before:
            raise Failure('the new lazyvold did not adopt nbdkit %d: %s'
                          % (before, health))
        # The clients kept their connections: the checks read through them.
        for e in self.exports.values():
            if e.h is not None:
                self.touch(e, 0, min(e.size, 4096))
        self.stats['lazyvold_alone'] += 1

    def step_nbdkit_kill(self, rng, _=None):
        self.note('kill -9 nbdkit under lazyvold, which restarts it')
        old = self.host.nbdkit_pid()
        os.kill(old, signal.SIGKILL)
        self.host.wait_gone([old], 'kill -9 nbdkit')
        for e in self.exports.values():
            e.h = None
        self.crash_model()
        deadline = time.monotonic() + 90
        while True:
            try:
                # The new nbdkit, with its exports discovered.
                if self.host.cmd('ping', timeout=5)['nbdkit_pid'] != old \
                        and self.host.ready():
                    break
            except (CtlError, HostDied):
                pass
            if time.monotonic() > deadline:
                raise Failure('lazyvold did not restart nbdkit within 90 s: %s'
                              % self.host.tail())
            time.sleep(0.1)
        self.host.remember_pids()
        self.settle_crash()
        self.stats['nbdkit_kills'] += 1

    def settle_crash(self):
        """After a restart that followed a crash: what was in doubt is
        read, checked against its candidates, and becomes cur."""
        self.after_restart()
        for e in self.exports.values():
            for off, n in e.uncertain():
                for p in range(off, off + n, READ_PIECE):
                    k = min(READ_PIECE, off + n - p)
                    got = self.read(e, p, k)
                    self.check_candidates(e, p, got)
                    e.cur.write(p, got)

    def plan_burst(self, rng, e):
        ops = []
        for _ in range(3 + int(rng.random() * 12)):
            if rng.random() < 0.2:
                ops.append({'op': 'flush', 'other': rng.random() < 0.5})
                continue
            off, n = self.pick_range(rng, e, MiB)
            ops.append({'op': 'write', 'off': off,
                        'data': self.make_data(rng, n)[0],
                        'fua': rng.random() < 0.15})
        for op in ops:
            op['issued'] = op['acked'] = False
        return ops

    @staticmethod
    def burst(h, h2, ops):
        """Writes and flushes, in order; a flush on the second connection
        covers the writes of the first (multi-conn)."""
        for op in ops:
            op['issued'] = True
            if op['op'] == 'flush':
                (h2 if op['other'] else h).flush()
            else:
                h.pwrite(op['data'], op['off'],
                         nbd.CMD_FLAG_FUA if op['fua'] else 0)
            op['acked'] = True

    def settle_burst(self, e, ops):
        """Writes before the last acknowledged flush are durable; writes
        issued after it are candidates, acknowledged or not."""
        for op in ops:
            if not op['issued']:
                break
            if op['op'] == 'flush':
                if op['acked']:
                    e.m_flush()
                continue
            e.m_write(op['off'], op['data'], self.n,
                      fua=op['fua'] and op['acked'], sure=op['acked'])
            self.touch(e, op['off'], len(op['data']))
            self.stats['written'] += len(op['data'])

    def settle_publish(self, e, kind, bg=None, point=None):
        """Did a publish killed part way become the head?  The store says;
        either way is right, unless a crash point says which."""
        vj = self.settled_head(e.name,
                               lambda vj: vj['generation'] != e.gen, point)
        g = vj['generation']
        if bg is not None and bg.error is None and bg.result is not None:
            r = bg.result
            if r['generation'] != g or r.get('snapshot_id') != \
                    vj['snapshot_id']:
                raise Failure('%s: the %s replied generation %s (%s), but '
                              'the head is %d (%s)' % (
                                  e.name, kind, r['generation'],
                                  r.get('snapshot_id'), g, vj['snapshot_id']))
        landed = g == e.gen + 1
        if g not in (e.gen, e.gen + 1):
            raise Failure('%s: the head went from generation %d to %d'
                          % (e.name, e.gen, g))
        if point in BEFORE_HEAD and landed:
            raise Failure('%s: the head moved, but the publish died at %s'
                          % (e.name, point))
        if point in ('publish.after_head', 'publish.after_refs') and \
                not landed:
            raise Failure('%s: the head did not move, but the publish died '
                          'at %s' % (e.name, point))
        if landed:
            e.m_published_all(vj['snapshot_id'], g,
                              'base' if kind == 'compact' else 'delta')
            self.new_snap(e, vj['snapshot_id'])
            self.stats['compacts' if kind == 'compact' else 'snapshots'] += 1
            self.stats['landed_by_kill'] += 1
        self.remark('the %s %s' % (kind, 'landed, generation %d' % g
                                   if landed else 'did not land'))

    def settled_head(self, name, moved, point):
        """The head of NAME after a kill.  A put the killed process had
        sent may still land: the store finishes a request whose body it
        has, whatever became of its client.  So after a kill -9 (no crash
        point), a head that has not MOVED is looked at again for a while."""
        vj = self.store.head(name)
        deadline = time.monotonic() + 2
        while point is None and not moved(vj) and time.monotonic() < deadline:
            time.sleep(0.1)
            vj = self.store.head(name)
        return vj

    def settle_clone(self, name, src, sid, point=None):
        vj = self.settled_head(name, lambda vj: vj is not None, point)
        if point in ('clone.after_manifest', 'clone.after_summary') and \
                vj is not None:
            raise Failure('clone %s has a head, but it died before it' % name)
        if point == 'clone.after_head' and vj is None:
            raise Failure('clone %s has no head, but it died after it' % name)
        if vj is None:
            self.ghosts.add(name)
            self.remark('clone %s did not land' % name)
            return
        self.add_clone(name, src, sid, vj['snapshot_id'])
        self.exports[name].refs_may_lag = True
        self.remark('clone %s landed' % name)

    def step_kill(self, rng, _=None):
        variant = KILL_VARIANTS[int(rng.random() * len(KILL_VARIANTS))]
        delay, order = rng.random() * 0.3, rng.getrandbits(32)
        mode = self.pick_mode(rng)
        e = self.pick_export(rng)
        src = self.pick_export(rng, lambda x: x.gen > 0)
        ops = self.plan_burst(rng, e) if variant == 'writes' else None
        plans = self.plan_writers(rng, e) if variant == 'racing' else None
        if variant == 'clone' and src is None:
            variant = 'idle'
        self.note('kill -9 of %s %s%s after %d ms, restart as %s' % (
            self.host, variant,
            '' if variant in ('idle', 'startup') else ' of ' +
            (src.name if variant == 'clone' else e.name),
            delay * 1000, mode))
        bg = name = None
        if variant == 'writes':
            bg = Background(self.burst, self.conn(e),
                            self.host.connect(e.name), ops)
        elif variant in ('snapshot', 'compact'):
            bg = Background(self.host.cmd, variant, e.name)
        elif variant == 'clone':
            name = 'c%d' % self.next_clone
            self.next_clone += 1
            if len([x for x in self.exports.values() if x.clone_of]) >= \
                    MAX_CLONES:
                self.retire_clone(src.name)
            bg = Background(self.host.cmd, 'clone', name,
                            source_export_id=src.name)
        elif variant in ('reset', 'close'):
            self.close_conn(e)
            self.wait_no_clients(e.name)
            bg = Background(self.host.cmd, variant, e.name)
        if variant == 'racing':
            racing = self.kill_racing(e, plans, delay, order)
        else:
            time.sleep(delay)
            self.kill_tree(order)
        if bg:
            bg.join()
        if variant == 'writes':
            self.settle_burst(e, ops)
        elif variant in ('snapshot', 'compact'):
            self.settle_publish(e, variant, bg)
        elif variant == 'clone':
            self.settle_clone(name, src, src.head)
        elif variant == 'reset':
            # Each byte: as it was, or the published image's.
            e.pending.append((0, e.published.read(0, e.size), self.n))
            e.dirty_maybe |= e.dirty_sure | e.dirty_unflushed
            e.dirty_sure = set()
        self.crash_model()
        if variant == 'startup':
            self.host.start(mode=mode, wait=False)
            time.sleep(delay)
            self.kill_tree(order)
        self.host.start(mode=mode)
        if variant == 'close':
            # A close is remembered from the moment it is recorded: one
            # the kill let get that far keeps the export closed across
            # the restart, until it is opened.
            try:
                self.host.cmd('open', e.name)
                self.remark('%s stayed closed across the kill' % e.name)
            except CtlError as ex:
                if ex.code != 'already_exists':
                    raise Failure('open %s after a killed close: %s'
                                  % (e.name, ex))
        if variant == 'racing' and racing:
            self.check_racing_snapshot(e, *racing, killed=True)
        self.settle_crash()
        self.stats['kills'] += 1

    def kill_racing(self, e, plans, delay, order):
        """Racing writers, some flushing, and a snapshot racing them,
        killed part way.  Writes flushed after the snapshot froze their
        chunks must survive its recovery.  Returns what
        check_racing_snapshot needs if the snapshot landed."""
        def snapshot_and_kill():
            t_send = time.monotonic()
            bg = Background(self.host.cmd, 'snapshot', e.name)
            time.sleep(delay)
            t_kill = time.monotonic()
            self.kill_tree(order)
            bg.join()
            return t_send, t_kill

        errors, (t_send, t_kill) = self.run_writers(e, plans,
                                                    snapshot_and_kill)
        early = [m for t, m in errors if t < t_kill]
        if early:
            raise Failure('before the kill: %s' % '; '.join(early))
        base, t_flush = self.settle_writers(e, plans)
        vj = self.store.head(e.name)
        if vj['generation'] not in (e.gen, e.gen + 1):
            raise Failure('%s: the head went from generation %d to %d'
                          % (e.name, e.gen, vj['generation']))
        self.remark('the racing snapshot %s' % (
            'landed' if vj['generation'] == e.gen + 1 else 'did not land'))
        if vj['generation'] == e.gen:
            return None
        self.stats['landed_by_kill'] += 1
        return (base, plans, t_send, t_kill, vj['snapshot_id'],
                vj['generation'], t_flush)

    # ------------------------------------------------------ crash points

    def step_crash_point(self, rng, _=None):
        point = self.points[int(rng.random() * len(self.points))]
        before = [p for p in BEFORE_HEAD if p in self.points]
        first = before[int(rng.random() * len(before))] \
            if point == 'recover.after_discard' else point
        nth = 1 + int(rng.random() * 3)
        compact = rng.random() < 0.3 or first == 'publish.during_upload'
        mode, order = self.pick_mode(rng), rng.getrandbits(32)
        big = first == 'publish.during_upload'
        # Between pieces: a blob of more than one piece.
        split = (self.args.object_max or 0) + MiB \
            if first == 'publish.between_pieces' else 0
        e = self.pick_export(rng, (lambda x: x.size >= 12 * MiB) if big
                             else (lambda x: x.size >= split + x.cs))
        e = e or self.pick_export(rng)
        src = self.pick_export(rng, lambda x: x.gen > 0) or e
        writes = []
        for _ in range(1 + int(rng.random() * 3)):
            off, n = self.pick_range(rng, e, MiB)
            writes.append((off, self.make_data(rng, n)[0]))
        if big or split:        # more than a part, or a piece, to upload
            n = min(e.size, 9 * MiB if big else split + e.cs)
            off = int(rng.random() * ((e.size - n) // e.cs + 1)) * e.cs
            writes.append((off, rng.randbytes(n)))
        spec = '%s:%d' % (first, nth) if big else first
        op = 'compact' if compact else 'snapshot'
        if first.startswith('clone.'):
            op, target = 'clone', src
        elif first == 'reset.after_meta':
            op, target = 'reset', e
        else:
            target = e
        self.note('crash point %s%s: %s %s with %d writes first, as %s' % (
            spec, ' then recover.after_discard' if point != first else '',
            op, target.name, len(writes), mode))
        # Restart with the point armed.
        self.close_all_conns()
        self.host.stop()
        for x in self.exports.values():
            x.h = None
            x.m_flush()
        self.host.start(crash_at=spec, mode=mode)
        for off, data in writes:
            self.nbd(e, 'pwrite', data, off, 0)
            e.m_write(off, data, self.n)
            self.touch(e, off, len(data))
            self.stats['written'] += len(data)
        if op == 'clone' and src.gen == 0:
            # Nothing to clone yet: publish the source first.
            self.after_publish(src, self.host.cmd('snapshot', src.name),
                               'delta')
        before = self.host.crashes(first)
        name = reply = error = None
        try:
            if op == 'clone':
                name = 'c%d' % self.next_clone
                self.next_clone += 1
                if len([x for x in self.exports.values() if x.clone_of]) >= \
                        MAX_CLONES:
                    self.retire_clone(src.name)
                reply = self.host.cmd('clone', name,
                                      source_export_id=src.name)
            elif op == 'reset':
                self.close_conn(e)
                self.wait_no_clients(e.name)
                reply = self.host.cmd('reset', e.name)
            else:
                reply = self.host.cmd(op, e.name)
        except (CtlError, HostDied) as ex:
            error = ex
        fired = self.wait_crash(first, before, error)
        if not fired:
            # The point was not reached (a blob too small for its Nth
            # part): the operation went through.  Disarm.
            self.remark('%s not reached' % spec)
            self.stats['crash_missed'] += 1
            if op == 'clone':
                self.add_clone(name, src, src.head, reply['snapshot_id'])
            elif op == 'reset':
                e.m_reset()
                self.stats['resets'] += 1
            else:
                self.after_publish(e, reply, 'base' if compact else 'delta')
            self.close_all_conns()
            self.host.stop()
            for x in self.exports.values():
                x.h = None
                x.m_flush()
            self.host.start(mode=mode)
            self.after_restart()
            return
        self.fired[first] += 1
        self.stats['crash_kills'] += 1
        recovered = self.host.recoveries()
        self.kill_tree(order)           # lazyvold and its keeper too
        # lazyvold may have restarted nbdkit, which may have undone the
        # publish, before the kill.
        recovered = self.host.recoveries() > recovered
        if op == 'clone':
            self.settle_clone(name, src, src.head, first)
        elif op == 'reset':
            e.m_reset()
            self.stats['resets'] += 1
        else:
            self.settle_publish(e, op, point=first)
        self.crash_model()
        if point == 'recover.after_discard' and recovered:
            self.remark('%s not reached: recovered already' % point)
            self.stats['crash_missed'] += 1
        elif point == 'recover.after_discard':
            if not self.host.start(crash_at=point, expect_crash=point,
                                   mode=mode):
                raise Failure('recovery of %s\'s interrupted publish did not '
                              'discard its objects' % e.name)
            self.fired[point] += 1
            self.stats['crash_kills'] += 1
            self.kill_tree(order)
        self.host.start(mode=mode)
        self.settle_crash()
        if first == 'reset.after_meta':
            st = self.host.cmd('status', e.name)
            if st['dirty_chunks'] or st['resident_chunks']:
                raise Failure('%s: after a crash at reset.after_meta, %d '
                              'dirty and %d resident chunks'
                              % (e.name, st['dirty_chunks'],
                                 st['resident_chunks']))

    def wait_crash(self, point, before, error):
        """Did the host die at POINT?  An operation that failed must have
        died there (the log says so within 30 s)."""
        deadline = time.monotonic() + 30
        while self.host.crashes(point) <= before:
            if error is None:
                return False
            if time.monotonic() > deadline:
                raise Failure('the operation failed without reaching crash '
                              'point %s: %s' % (point, error))
            time.sleep(0.05)
        return True

    # -------------------------------------------------- hosts and faults

    def step_takeover(self, rng, _=None):
        """Another host and the exports' ownership (see OWNERSHIP in
        lazyvold(8)).  A is the host that owns every export, B a new one
        (its own cache root and host id, the same store):
          handover: A stops cleanly; B starts with takeover (waiting out
            A's lease if A kept exports for their unpublished writes);
          dead: A is killed with kill -9; B starts with takeover, which
            waits out A's lease;
          force: A runs on; B takes every export by force; A must stop
            acknowledging writes within the lease period L, and its
            publishes fail;
          refused: A runs on; B starts without takeover (or with it, and
            sees A renew its lease): B gets every export read-only,
            refuses writes and publishes, and A goes on as before.
        After the first three B owns every export at a higher epoch and
        serves what A published, and A may come back (its own cache
        root, left as it was): it gets the exports read-only, stale where
        it has unpublished writes, and can neither write nor publish.  B
        may die at a takeover crash point first, and start again."""
        how = TAKEOVERS[int(rng.random() * len(TAKEOVERS))]
        mode, back_mode = self.pick_mode(rng), self.pick_mode(rng)
        publish, back = rng.random() < 0.3, rng.random() < 0.5
        wait = rng.random() < 0.3
        order = rng.getrandbits(32)
        probe = self.pick_export(rng)
        point = None
        if how != 'refused' and self.args.crash_points and rng.random() < 0.3:
            point = TAKEOVER_POINTS[int(rng.random() * len(TAKEOVER_POINTS))]
        old = self.host
        self.note('%s: host %s and a new host as %s%s%s%s' % (
            how, old, mode, ', after publishing everything' if publish else '',
            ', which waits for the lease' if how == 'refused' and wait else '',
            ', dying at %s first' % point if point else ''))
        if publish:
            for e in list(self.exports.values()):
                self.after_publish(e, self.host.cmd('snapshot', e.name),
                                   'delta')
        if how == 'refused':
            self.refused_takeover(old, mode, wait)
            return
        epochs = {n: e.epoch or e.epoch_min for n, e in self.exports.items()}
        if how == 'handover':
            self.close_all_conns()
            old.stop()
        elif how == 'dead':
            self.kill_tree(order)
        new = self.new_host(mode)
        self.extra.append(new)
        self.start_taker(new, 'force' if how == 'force' else 'true', point)
        if how == 'force':
            self.deposed(old, new, probe)
            self.close_all_conns()
            old.stop()
        self.host = new
        self.extra.remove(new)
        for n, e in self.exports.items():
            e.m_reset()                 # B's cache is empty
            e.epoch, e.epoch_min = None, epochs[n] + 1
        self.after_restart()
        self.stats['takeovers'] += 1
        self.stats['takeover_' + how] += 1
        if back:
            self.comes_back(old, back_mode)
        self.retire_host(old)

    def start_taker(self, b, takeover, point):
        """Start B taking the exports; with POINT, it dies there first
        (at the first export it takes) and starts again."""
        if point is None:
            b.start(takeover=takeover)
            return
        before = b.crashes(point)
        if not b.start(takeover=takeover, crash_at=point, expect_crash=point):
            raise Failure('%s started without reaching %s' % (b, point))
        self.fired[point] += 1
        self.stats['crash_kills'] += 1
        assert b.crashes(point) > before
        b.kill9()
        self.remark('died at %s' % point)
        b.start(takeover=takeover)

    def refused_takeover(self, a, mode, wait):
        """B, started while A owns and renews: every export read-only."""
        b = self.new_host(mode)
        self.extra.append(b)
        b.start(takeover='true' if wait else None)
        for e in self.exports.values():
            self.probe_not_owner(b, a, e, stale=False)
            # B loaded the head A published, and serves it.
            off, n = 0, min(e.size, 65536)
            got = self.read(e, off, n, host=b)
            self.compare(e, off, got, e.published.read(off, n),
                         'read on a host that does not own it')
        b.stop()
        self.extra.remove(b)
        self.retire_host(b)
        for e in self.exports.values():
            self.full.add(e.name)       # A goes on, untouched
        self.stats['takeovers_refused'] += 1

    def probe_not_owner(self, h, owner, e, stale):
        """On host H, export E is owned by OWNER: status says so, and a
        write and a publish are refused.  STALE: H has unpublished writes
        for it (True), has none (False), or may have (None)."""
        st = h.cmd('status', e.name)
        o = st.get('owner') or {}
        bad = []
        if st.get('writable') is not False:
            bad.append('writable is %s' % st.get('writable'))
        if (o.get('host_id'), o.get('this_host')) != (owner.host_id, False):
            bad.append('owner is %s, not %s' % (o, owner.host_id))
        if stale is not None and st.get('stale') is not stale:
            bad.append('stale is %s, not %s' % (st.get('stale'), stale))
        if not st.get('notice'):
            bad.append('no notice says why it is read-only')
        if bad:
            raise Failure('status of %s on %s: %s' % (e.name, h,
                                                      '; '.join(bad)))
        c = h.connect(e.name)
        try:
            c.pwrite(b'\xa5' * 512, 0)
            raise Failure('%s acknowledged a write to %s, owned by %s'
                          % (h, e.name, owner))
        except nbd.Error:
            pass
        finally:
            c.shutdown()
        try:
            h.cmd('snapshot', e.name)
            raise Failure('%s published %s, owned by %s' % (h, e.name, owner))
        except CtlError:
            pass

    def deposed(self, a, b, e):
        """B took every export from A by force while A runs: A stops
        acknowledging writes (to E) within the lease period, and cannot
        publish."""
        t0, limit = time.monotonic(), self.args.lease + 0.5
        h = self.conn(e)
        acked = 0
        while True:
            try:
                h.pwrite(b'\x5a' * 4096, 0)
                acked += 1
            except nbd.Error:
                break
            if time.monotonic() - t0 > limit:
                raise Failure('%s still acknowledges writes to %s %.1f s '
                              'after %s took it by force (lease %d s)'
                              % (a, e.name, time.monotonic() - t0, b,
                                 self.args.lease))
            time.sleep(0.05)
        ms = int((time.monotonic() - t0) * 1000)
        self.stats['deposed_ms_max'] = max(self.stats['deposed_ms_max'], ms)
        self.remark('%s refused writes to %s %d ms after the takeover (%d '
                    'acknowledged meanwhile)' % (a, e.name, ms, acked))
        for x in self.exports.values():
            try:
                a.cmd('snapshot', x.name)
                raise Failure('%s published %s after %s took it' % (a, x.name,
                                                                    b))
            except CtlError:
                pass

    def comes_back(self, a, mode):
        """A starts again on its cache root: the exports are the current
        host's, and A gets them read-only."""
        self.extra.append(a)
        a.start(mode=mode)
        for e in self.exports.values():
            self.probe_not_owner(a, self.host, e, stale=None)
        a.stop()
        self.extra.remove(a)
        self.stats['came_back'] += 1

    def retire_host(self, h):
        logs = os.path.join(self.args.dir, 'logs')
        os.makedirs(logs, exist_ok=True)
        if os.path.exists(h.log):
            os.rename(h.log, os.path.join(logs, os.path.basename(h.root)
                                          + '.log'))
        shutil.rmtree(h.root)

    def step_store_fault(self, rng, _=None):
        """Faults of the link to the store (errors, hangs, delays, resets,
        truncated and corrupted bodies) during a snapshot, a compact, or
        reads of an export just reset (every chunk read is fetched)."""
        e = self.pick_export(rng)
        op = rng.choice(('snapshot', 'snapshot', 'compact', 'read', 'read'))
        if op != 'read' and rng.random() < 0.7:
            self.step_write(rng, e)     # something for the publish to put
        if op == 'read':
            self.close_conn(e)
            self.wait_no_clients(e.name)
            self.host.cmd('reset', e.name)
            e.m_reset()
            self.stats['resets'] += 1
        what = self.faults.inject(rng, reads=op == 'read')
        self.note('store faults %s during %s of %s' % (what, op, e.name))
        unsettled = False
        try:
            if op == 'read':
                failed = self.read_under_faults(e)
            else:
                unsettled = self.publish_under_faults(e, op)
        finally:
            self.faults.clear()
        if op == 'read':
            for off, n in failed:       # whole now: the same bytes
                self.verify(e, off, n)
        if unsettled:
            # The next publish settles what the failed one left.
            self.after_publish(e, self.host.cmd('snapshot', e.name), 'delta')
        self.stats['store_faults'] += 1

    def read_under_faults(self, e):
        """Every read returns the model's bytes or fails; the ranges that
        failed."""
        failed = []
        for p in range(0, e.size, READ_PIECE):
            n = min(READ_PIECE, e.size - p)
            try:
                got = self.conn(e).pread(n, p)
            except nbd.Error as ex:
                if ex.errnum not in (errno.EIO, errno.ETIMEDOUT,
                                     errno.EAGAIN):
                    raise Failure('read %s [%d+%d] under faults: %s'
                                  % (e.name, p, n, ex))
                failed.append((p, n))
                continue
            self.compare(e, p, got, e.cur.read(p, n), 'read under faults')
            self.stats['verified'] += n
        if failed:
            self.remark('%d of %d reads failed' % (
                len(failed), (e.size + READ_PIECE - 1) // READ_PIECE))
        return failed

    def publish_under_faults(self, e, op):
        """The publish succeeds, or fails with a store error and leaves the
        head where it was, or moved it anyway: then the export knows it,
        or (if it could not read the head again) says it cannot tell,
        and its next publish settles it.  True in that last case."""
        kind = 'base' if op == 'compact' else 'delta'
        try:
            r = self.host.cmd(op, e.name)
        except CtlError as ex:
            if ex.code not in STORE_CODES:
                raise Failure('%s under a store fault: %s' % (op, ex))
            r, why = None, ex.message or ''
            self.remark('failed: %s' % ex)
        if r is not None:
            self.after_publish(e, r, kind)
            return False
        vj = self.store.head(e.name)
        if vj['generation'] == e.gen:
            return False
        st = self.host.cmd('status', e.name)
        unsettled = st['snapshot_generation'] != vj['generation']
        if unsettled and 'cannot be read again' not in why:
            raise Failure('%s: the failed %s moved the head to %d, but the '
                          'export is at %d' % (e.name, op, vj['generation'],
                                               st['snapshot_generation']))
        e.m_published_all(vj['snapshot_id'], vj['generation'], kind)
        self.new_snap(e, vj['snapshot_id'])
        return unsettled

    # ------------------------------------------------------------ checks

    def read(self, e, off, n, name=None, host=None):
        """Bytes [off, off+n) of E (or of the export NAME) over NBD, from
        the host (or from HOST)."""
        if host is not None:
            name = name or e.name
        h = self.conn(e) if name is None else \
            (host or self.host).connect(name)
        out = []
        try:
            for p in range(off, off + n, READ_PIECE):
                out.append(h.pread(min(READ_PIECE, off + n - p), p))
        except nbd.Error as ex:
            raise Failure('read %s [%d+%d]: %s' % (name or e.name, off, n, ex))
        finally:
            if name is not None:
                h.shutdown()
        self.stats['verified'] += n
        return b''.join(out)

    def compare(self, e, off, got, want, what):
        if got == want:
            return
        i = next(i for i in range(len(want)) if got[i] != want[i])
        j = i
        while j < len(want) and got[j] != want[j]:
            j += 1
        p = off + i
        raise Failure('%s of %s: byte %d (chunk %d, +%d) and %d more differ: '
                      'read %s, the model has %s' % (
                          what, e.name, p, p // e.cs, p % e.cs, j - i - 1,
                          got[i:i + 16].hex(), want[i:i + 16].hex()))

    def verify(self, e, off, n):
        self.compare(e, off, self.read(e, off, n), e.cur.read(off, n), 'read')

    def verify_all(self, e):
        for p in range(0, e.size, READ_PIECE):
            self.verify(e, p, min(READ_PIECE, e.size - p))

    def check_candidates(self, e, off, got):
        """After a crash: every byte is its flushed value or the value of
        a write since the flush that covers it."""
        end = off + len(got)
        pend = [p for p in e.pending if p[0] < end and p[0] + len(p[1]) > off]
        cuts = {off, end}
        for p_off, p_data, _ in pend:
            cuts.add(max(off, p_off))
            cuts.add(min(end, p_off + len(p_data)))
        cuts = sorted(cuts)
        for a, b in zip(cuts, cuts[1:]):
            obs = got[a - off:b - off]
            cands = [('its flushed value', e.flushed.read(a, b - a))]
            for p_off, p_data, step in pend:
                if p_off <= a and b <= p_off + len(p_data):
                    cands.append(('the write of step %d' % step,
                                  p_data[a - p_off:b - p_off]))
            if any(obs == c for _, c in cands):
                continue
            q = a
            while q < b:                # page by page, then byte by byte
                r = min(b, (q // 4096 + 1) * 4096)
                blk = obs[q - a:r - a]
                if not any(blk == c[q - a:r - a] for _, c in cands):
                    for i in range(q, r):
                        if all(obs[i - a] != c[i - a] for _, c in cands):
                            raise Failure(
                                '%s: after the crash byte %d (chunk %d) is '
                                '0x%02x, which is none of %s' % (
                                    e.name, i, i // e.cs, obs[i - a],
                                    ', '.join('%s (0x%02x)' % (w, c[i - a])
                                              for w, c in cands)))
                q = r

    def check_digest(self, e, snap, i, data):
        want = snap.digests[i]
        got = None if data == zeros(len(data)) else \
            hashlib.sha256(data).hexdigest()
        if got != want:
            raise Failure('view %s@%s: chunk %d reads %s, the model has %s'
                          % (e.name, snap.sid, i, got or 'zeros',
                             want or 'zeros'))

    def read_view(self, e, snap, chunks=None):
        """Read snapshot SNAP through its read-only view E@SID."""
        name = '%s@%s' % (e.name, snap.sid)
        h = self.host.connect(name)
        try:
            if not h.is_read_only():
                raise Failure('view %s is writable' % name)
            img = Image(e.size, e.cs)
            for i in (range(img.n) if chunks is None else chunks):
                data = h.pread(img.clen(i), i * e.cs)
                self.check_digest(e, snap, i, data)
                self.stats['verified'] += len(data)
        except nbd.Error as ex:
            raise Failure('read view %s: %s' % (name, ex))
        finally:
            h.shutdown()

    def saw_gen(self, name, g, where):
        if g < self.max_gen.get(name, 0):
            raise Failure('%s: generation went backwards: %s says %d, after %d'
                          % (name, where, g, self.max_gen[name]))
        self.max_gen[name] = g

    def check_status(self, e):
        st = self.host.cmd('status', e.name)
        want = {'image_size': e.size, 'chunk_size': e.cs, 'readonly': False,
                'snapshot_generation': e.gen,
                'remote_head_generation': e.gen, 'snapshot_id': e.head,
                'failed_stop': False, 'suspect_chunks': 0,
                'operation_state': 'idle'}
        bad = ['%s is %s, not %s' % (k, st.get(k), v)
               for k, v in want.items() if st.get(k) != v]
        lo = len(e.dirty_sure | e.dirty_unflushed)
        hi = len(e.dirty_sure | e.dirty_unflushed | e.dirty_maybe)
        if not lo <= st['dirty_chunks'] <= hi:
            bad.append('dirty_chunks is %d, not %s' % (
                st['dirty_chunks'], lo if lo == hi else '%d..%d' % (lo, hi)))
        self.saw_gen(e.name, st['snapshot_generation'], 'status')
        bad += self.check_owned(e, st)
        if bad:
            raise Failure('status of %s: %s' % (e.name, '; '.join(bad)))

    def check_owned(self, e, st):
        """The export is the host's, writable, at the model's epoch."""
        owner = st.get('owner') or {}
        if e.epoch is None:
            e.epoch = st.get('epoch')
            if not isinstance(e.epoch, int) or e.epoch < e.epoch_min:
                return ['epoch is %s, not at least %d' % (e.epoch,
                                                           e.epoch_min)]
        want = {'writable': True, 'stale': False, 'epoch': e.epoch}
        bad = ['%s is %s, not %s' % (k, st.get(k), v)
               for k, v in want.items() if st.get(k) != v]
        if (owner.get('host_id'), owner.get('epoch'),
                owner.get('this_host')) != (self.host.host_id, e.epoch, True):
            bad.append('owner is %s, not %s at epoch %d' % (
                owner, self.host.host_id, e.epoch))
        if not (st.get('lease') or {}).get('valid'):
            bad.append('lease is %s' % st.get('lease'))
        return bad

    def check_manifest(self, e, snap):
        """A published snapshot is the model's image at that snapshot,
        chunk by chunk."""
        m = self.store.manifest(e.name, snap.sid)
        where = 'manifest %s@%s' % (e.name, snap.sid)
        if m is None:
            raise Failure('%s does not exist' % where)
        want = {'format': 'lazyvol-manifest', 'export_id': e.name,
                'snapshot_id': snap.sid, 'generation': snap.gen,
                'kind': snap.kind, 'image_size': e.size, 'chunk_size': e.cs,
                'parent': snap.parent}
        bad = ['%s is %s, not %s' % (k, m.get(k), v)
               for k, v in want.items() if m.get(k) != v]
        if snap.kind == 'clone':
            cf = m.get('cloned_from') or {}
            if (cf.get('export_id'), cf.get('snapshot_id')) != \
                    snap.cloned_from:
                bad.append('cloned_from is %s, not %s'
                           % (cf, snap.cloned_from))
        if bad:
            raise Failure('%s: %s' % (where, '; '.join(bad)))
        own = '%s/snapshots/%s/' % (e.name, snap.sid)
        listed, last = {}, -1
        for x in m['extents']:
            if x['chunk'] <= last or len(x['sha256']) != x['count']:
                raise Failure('%s: extents not sorted, overlapping or with '
                              'the wrong number of hashes at chunk %d'
                              % (where, x['chunk']))
            last = x['chunk'] + x['count'] - 1
            for k in range(x['count']):
                listed[x['chunk'] + k] = (m['blobs'][x['blob']]['key'],
                                          x['offset'] + k * e.cs,
                                          hash_hex(m, x['sha256'][k]))
        for i in range(e.nchunks):
            d = snap.digests[i]
            if i in listed and d is None:
                raise Failure('%s: chunk %d is zeros, but stored' % (where, i))
            if i not in listed and d is not None:
                raise Failure('%s: chunk %d holds data, but is not listed'
                              % (where, i))
            if i in listed and listed[i][2] != d:
                raise Failure('%s: chunk %d has SHA-256 %s, the model %s'
                              % (where, i, listed[i][2], d))
        if snap.kind == 'base' and any(
                not re.match(re.escape(own) + r'base(\.[1-9][0-9]*)?\.blob$',
                             b['key']) for b in m['blobs']):
            raise Failure('%s: a base names other blobs: %s'
                          % (where, [b['key'] for b in m['blobs']]))
        # Its own blob holds exactly the chunks it takes from it, back to
        # back in chunk order, in pieces of whole chunks (KIND.blob,
        # KIND.1.blob, ...), each no larger than the object limit unless
        # it is one chunk; their bytes match (all of them are read from a
        # file store, one from S3).
        mine = sorted(i for i in listed if listed[i][0].startswith(own))
        pieces, at = [], {}
        for i in mine:
            key, boff = listed[i][:2]
            if not pieces or pieces[-1] != key:
                kind = 'base' if snap.kind == 'base' else 'delta'
                name = '%s%s%s.blob' % (own, kind, '.%d' % len(pieces)
                                        if pieces else '')
                if key != name:
                    raise Failure('%s: chunk %d is in %s, not in %s'
                                  % (where, i, key, name))
                pieces.append(key)
            if boff != at.get(key, 0):
                raise Failure('%s: chunk %d is at %d in %s, not %d'
                              % (where, i, boff, key, at.get(key, 0)))
            at[key] = boff + e.cur.clen(i)
        for b in m['blobs']:
            if not b['key'].startswith(own):
                continue
            if b['size'] != at.get(b['key'], 0):
                raise Failure('%s: its blob %s is %d bytes, the chunks it '
                              'takes from it %d' % (where, b['key'],
                                                    b['size'],
                                                    at.get(b['key'], 0)))
            if b['size'] > max(self.args.object_max or b['size'], e.cs):
                raise Failure('%s: its blob %s is %d bytes, over the object '
                              'limit of %d' % (where, b['key'], b['size'],
                                               self.args.object_max))
        # Its summary says the same as the manifest.
        s = self.store.json('%s%s/snapshots/%s/summary.json'
                            % (self.store.prefix, e.name, snap.sid))
        if s is None:
            raise Failure('%s: no summary.json' % where)
        want = dict((k, m.get(k)) for k in (
            'export_id', 'snapshot_id', 'parent', 'kind', 'generation',
            'created', 'image_size', 'chunk_size', 'base_ref', 'cloned_from',
            'blobs'))
        want.update(format='lazyvol-summary', version=1, chunks=len(listed),
                    bytes=sum(b['size'] for b in m['blobs']
                              if b['key'].startswith(own)))
        bad = ['%s is %s, not %s' % (k, s.get(k), v)
               for k, v in want.items() if s.get(k) != v]
        if bad:
            raise Failure('%s: summary.json: %s' % (where, '; '.join(bad)))
        if self.store.backend != 'file' and mine:
            mine = [mine[int(self.crng.random() * len(mine))]]
        for i in mine:
            key, boff, d = listed[i]
            data = self.store.get_range(self.store.prefix + key, boff,
                                        min(e.cs, e.size - i * e.cs))
            if hashlib.sha256(data).hexdigest() != d:
                raise Failure('%s: chunk %d in %s [%d] does not match its '
                              'SHA-256' % (where, i, key, boff))

    def check_new_snap(self, name, sid):
        e = self.exports.get(name)
        if e is None or sid not in e.snaps or sid in e.deleted:
            return
        snap = e.snaps[sid]
        self.check_manifest(e, snap)
        # Read it back: whole from a file store; from S3 what changed
        # since its parent and a sample.
        chunks = None
        parent = e.snaps.get(snap.parent)
        if self.store.backend != 'file' and parent is not None:
            chunks = sorted({i for i in range(e.nchunks)
                             if snap.digests[i] != parent.digests[i]} |
                            {int(self.crng.random() * e.nchunks)
                             for _ in range(2)})
        self.read_view(e, snap, chunks)
        if self.crng.random() < 0.8:
            self.close_view(name, sid)

    def check_snapshot_list(self, name):
        e = self.exports.get(name)
        if e is None:
            return
        got = self.host.cmd('snapshots', name)['snapshots']
        ids = [s['snapshot_id'] for s in got]
        want = e.live_snaps()
        if sorted(ids) != sorted(want):
            raise Failure('snapshots of %s: missing %s, unknown %s' % (
                name, sorted(set(want) - set(ids)),
                sorted(set(ids) - set(want))))
        gens = [s['generation'] for s in got]
        if gens != sorted(gens):
            raise Failure('snapshots of %s are not oldest first: %s'
                          % (name, gens))
        for s in got:
            snap = e.snaps[s['snapshot_id']]
            w = {'generation': snap.gen, 'kind': snap.kind,
                 'parent': snap.parent, 'chunks': snap.nonzero,
                 'current': snap.sid == e.head}
            bad = ['%s is %s, not %s' % (k, s.get(k), v)
                   for k, v in w.items() if s.get(k) != v]
            if bad:
                raise Failure('snapshot %s@%s in the listing: %s'
                              % (name, snap.sid, '; '.join(bad)))

    def check_store(self):
        """The bucket, read directly: heads, chains, blobs, deletions."""
        keys = self.store.list()
        pre = self.store.prefix
        named = set()                   # blobs some live manifest names
        deleted_blobs = []

        def need(key, size=None, why=''):
            if key not in keys:
                raise Failure('%s is gone%s' % (key, why))
            if size is not None and keys[key] != size:
                raise Failure('%s is %d bytes, its manifest says %d'
                              % (key, keys[key], size))

        folders = {}
        for k in keys:
            folders.setdefault(k[len(pre):].split('/')[0], []).append(k)
        for f, ks in folders.items():
            if f in self.exports or f in ('.hosts', '.refs'):
                continue
            if f not in self.ghosts or pre + f + '/volume.json' in keys:
                raise Failure('objects of an unknown export: %s' % ks[:5])
        # A clone killed before its head leaves its manifest (clones keep
        # no journal): harmless, nothing names it, but it takes room.
        self.stats['orphan_clones'] = len(self.ghosts & set(folders))
        for e in self.exports.values():
            vj = self.store.head(e.name)
            if vj is None:
                raise Failure('%s/volume.json is gone' % e.name)
            self.saw_gen(e.name, vj['generation'], 'volume.json')
            if (vj['generation'], vj['snapshot_id']) != (e.gen, e.head) or \
                    vj['image_size'] != e.size or vj['chunk_size'] != e.cs:
                raise Failure('%s/volume.json is generation %d (%s), size %d, '
                              'chunk %d; the model %d (%s)' % (
                                  e.name, vj['generation'], vj['snapshot_id'],
                                  vj['image_size'], vj['chunk_size'], e.gen,
                                  e.head))
            refs = self.store.json('%s%s/refs/current.json' % (pre, e.name))
            if not e.refs_may_lag and e.gen > 0 and (
                    refs is None or (refs['generation'], refs['snapshot_id'])
                    != (e.gen, e.head)):
                raise Failure('%s/refs/current.json is %s, the head %d (%s)'
                              % (e.name, refs and (refs['generation'],
                                                   refs['snapshot_id']),
                                 e.gen, e.head))
            # The head's chain, and every snapshot the model holds.
            sid, seen = e.head, set()
            while sid and sid not in seen and sid not in e.deleted:
                seen.add(sid)
                mk = '%s%s/snapshots/%s/manifest.json' % (pre, e.name, sid)
                need(mk, why=', but the head of %s reaches it' % e.name)
                sid = self.store.manifest(e.name, sid)['parent']
            for sid in e.live_snaps():
                mk = '%s%s/snapshots/%s/manifest.json' % (pre, e.name, sid)
                need(mk, why=', but snapshot %s was never deleted' % sid)
                for b in self.store.manifest(e.name, sid)['blobs']:
                    need(pre + b['key'], b['size'],
                         ', but manifest %s names it' % mk)
                    named.add(pre + b['key'])
            self.check_owner_record(e, vj)
            layout = ('volume.json', 'refs/current.json', 'owner.json')
            for k in folders.get(e.name, []):
                rest = k[len(pre) + len(e.name) + 1:]
                if rest in layout:
                    continue
                parts = rest.split('/')
                if len(parts) != 3 or parts[0] != 'snapshots' or \
                        not re.match(r'(manifest|summary)\.json$|'
                                     r'(delta|base)(\.[1-9][0-9]*)?\.blob$',
                                     parts[2]):
                    raise Failure('unexpected object %s' % k)
                if parts[2] == 'summary.json' and parts[1] in e.deleted:
                    continue        # a delete that failed to remove it: gc's
                if parts[1] in e.deleted:
                    if parts[2] == 'manifest.json':
                        raise Failure('%s stayed after its snapshot was '
                                      'deleted' % k)
                    deleted_blobs.append(k)
                elif parts[1] not in e.snaps and \
                        parts[1] != self.journaled(e):
                    raise Failure('%s belongs to no snapshot (left by an '
                                  'interrupted publish?)' % k)
        # A blob a delete kept (another manifest used it) stays even once
        # that manifest goes too: deletes look at their own blob only.
        kept = set().union(*(e.kept_blobs for e in self.exports.values()))
        for k in deleted_blobs:
            if k not in named and k not in kept:
                raise Failure('%s stayed after its snapshot was deleted, and '
                              'no manifest names it' % k)
        self.stats['leaked_blobs'] = max(self.stats['leaked_blobs'], len(
            [k for k in deleted_blobs if k not in named]))
        self.store_changed = False

    def journaled(self, e):
        """The snapshot of the publish journal E's cache keeps (a failed
        publish whose objects could not all be removed yet), or None."""
        try:
            with open(os.path.join(self.host.cache, e.name,
                                   'snapshot.journal.json')) as f:
                return json.load(f).get('snapshot_id')
        except (OSError, ValueError):
            return None

    def check_owner_record(self, e, vj):
        """owner.json names the host at the model's epoch, the head
        carries that epoch, and epochs never go backwards."""
        rec = self.store.json('%s%s/owner.json' % (self.store.prefix, e.name))
        if rec is None:
            raise Failure('%s/owner.json is gone' % e.name)
        for what, ep in (('owner.json', rec['epoch']),
                         ('volume.json', vj.get('epoch', 0))):
            if ep < self.max_epoch.get(e.name, 0):
                raise Failure('%s: the epoch went backwards: %s says %d, '
                              'after %d' % (e.name, what, ep,
                                            self.max_epoch[e.name]))
        self.max_epoch[e.name] = rec['epoch']
        if e.epoch is not None and (
                rec['host_id'], rec['epoch'], vj.get('epoch')) != \
                (self.host.host_id, e.epoch, e.epoch):
            raise Failure('%s: owner.json names %s at epoch %d and the head '
                          'has epoch %s; the model: %s at epoch %d' % (
                              e.name, rec['host_id'], rec['epoch'],
                              vj.get('epoch'), self.host.host_id, e.epoch))

    def check_step(self):
        crng = self.crng
        full = self.n % FULL_EVERY == 0
        for e in list(self.exports.values()):
            if full or e.name in self.full:
                self.verify_all(e)
            else:
                ranges = list(self.touched.get(e.name, []))
                if ranges or crng.random() < 0.3:
                    for _ in range(2):
                        n = min(e.size, (1, 512, 4096, 65536, 262144)[
                            int(crng.random() * 5)])
                        ranges.append((int(crng.random() * (e.size - n + 1)),
                                       n))
                for off, n in ranges:
                    self.verify(e, off, n)
            if full or e.name in self.full or e.name in self.touched or \
                    e.name in self.list_check:
                self.check_status(e)
        for name, sid in self.to_verify:
            self.check_new_snap(name, sid)
        if self.store.backend == 'file' or self.store_changed or \
                self.n % STORE_EVERY == 0:
            self.check_store()
        for name in self.list_check:
            self.check_snapshot_list(name)

    # ---------------------------------------------------------- the run

    def begin_step(self):
        self.touched, self.full, self.list_check = {}, set(), set()
        self.to_verify = []
        self.step_t0 = time.monotonic()

    def setup(self):
        self.n = 0
        self.begin_step()
        self.crng = random.Random(self.args.seed ^ 0x5eed)
        self.host = self.new_host(self.pick_mode(self.master))
        self.note('start %s; create %s' % (self.host, ', '.join(
            x[0] for x in EXPORTS)))
        self.host.start()
        for name, size, cs in EXPORTS:
            body = {'size': size}
            if cs:
                body['chunk_size'] = cs
            r = self.host.cmd('create', name, **body)
            if r['chunk_size'] != (cs or DEFAULT_CHUNK):
                raise Failure('%s has chunk size %d' % (name, r['chunk_size']))
            self.exports[name] = Export(name, size, cs or DEFAULT_CHUNK)
        self.check_step()

    def run(self):
        t0 = self.t_start = time.monotonic()
        threading.Thread(target=self.watchdog, daemon=True).start()
        self.setup()
        while not (self.args.steps and self.n >= self.args.steps) and \
                not (self.args.duration and
                     time.monotonic() - t0 >= self.args.duration):
            self.n += 1
            seed = self.master.getrandbits(64)
            rng = random.Random(seed)
            self.crng = random.Random(seed ^ 0x5eed)
            self.begin_step()
            kind, e = self.choose(rng)
            getattr(self, 'step_' + kind)(rng, e)
            self.check_step()
            self.stats['steps'] += 1
            if not self.args.verbose and self.n % 100 == 0:
                print('torture: step %d, %d s'
                      % (self.n, time.monotonic() - t0), flush=True)
        self.finish()
        self.done = True
        return time.monotonic() - t0

    def finish(self):
        """Publish everything; a fresh host with an empty cache must read
        exactly the model."""
        self.n += 1
        self.begin_step()
        self.note('final: publish every export, read it back from a fresh '
                  'host')
        for e in list(self.exports.values()):
            self.after_publish(e, self.host.cmd('snapshot', e.name), 'delta')
        self.check_step()
        self.close_all_conns()
        self.host.stop()
        self.host = self.new_host('plugin' if self.args.mode == 'mixed'
                                  else self.args.mode)
        self.host.start()
        self.begin_step()
        for e in self.exports.values():
            e.m_reset()
            self.full.add(e.name)
            self.list_check.add(e.name)
        self.store_changed = True
        self.check_step()
        self.close_all_conns()
        self.host.stop()

    def watchdog(self):
        while not self.done:
            time.sleep(1)
            if time.monotonic() - self.step_t0 > STEP_TIMEOUT:
                self.report('the step did not finish in %d s (a hang?)'
                            % STEP_TIMEOUT)
                self.cleanup()
                if self.at_exit:
                    self.at_exit()
                os._exit(1)

    def report(self, why):
        print('FAIL: seed %d, step %d (%s): %s' % (self.args.seed, self.n,
                                                   self.desc, why), flush=True)
        print('replay: %s' % self.replay_command())
        print('the last steps:\n    ' + '\n    '.join(self.history))
        if self.host:
            print('log of %s:%s' % (self.host, self.host.tail(25)), flush=True)

    def replay_command(self):
        out, skip = [], False
        for a in sys.argv[1:]:
            if skip:
                skip = False
                continue
            if a in ('--seed', '--steps', '--duration', '--dir'):
                skip = True
                continue
            if a.split('=')[0] in ('--seed', '--steps', '--duration', '--dir'):
                continue
            out.append(a)
        if '--' in out:
            i = out.index('--')
            out = out[:i] + ['--seed', str(self.args.seed), '--steps',
                             str(self.n)] + out[i:]
        else:
            out += ['--seed', str(self.args.seed), '--steps', str(self.n)]
        return ' '.join(['/usr/bin/python3', sys.argv[0]] + out)

    def cleanup(self):
        for h in [self.host] + self.extra:
            if h is None:
                continue
            try:
                h.kill9()
            except Exception:           # noqa: B902 (best effort at exit)
                pass

    def summary(self, secs):
        s = self.stats
        fired = ', '.join('%s %d' % (p, self.fired[p])
                          for p in self.points + TAKEOVER_POINTS)
        print('torture: crash points fired: %s; %d not reached' % (
            fired, s['crash_missed']))
        print('torture: gc: %d runs took %d objects and %d uploads; %d '
              'things of journaled publishes were busy' % (
                  s['gcs'], s['gc_objects'], s['gc_uploads'], s['gc_busy']))
        print('torture: left in the store: %d blobs that deletes kept and no '
              'manifest names any more, %d manifests of clones killed before '
              'their head; %d fast zeros refused (%d after zeroing chunks)'
              % (s['leaked_blobs'], s['orphan_clones'],
                 s['fast_zero_refused'], s['fast_zero_partial']))
        print('torture: seed %d: %d steps in %d s: %d kills, %d crash-point '
              'kills, %d snapshots (%d racing writers, %d landed by a kill), '
              '%d compacts, %d clones, %d deletes, %d resets, %d restarts, '
              '%d lazyvold restarts, %d nbdkit kills, %d takeovers; %.1f MiB '
              'written, %.1f MiB verified' % (
                  self.args.seed, s['steps'], secs, s['kills'],
                  s['crash_kills'], s['snapshots'], s['racing_snapshots'],
                  s['landed_by_kill'], s['compacts'], s['clones'],
                  s['deletes'], s['resets'], s['restarts'],
                  s['lazyvold_alone'], s['nbdkit_kills'], s['takeovers'],
                  s['written'] / MiB, s['verified'] / MiB), flush=True)
        if self.faults.enabled:
            c = self.faults.counts()
            print('torture: store faults: %d steps; injected %s; %d of %d '
                  'requests' % (s['store_faults'], ', '.join(
                      '%s %d' % (k, c.get(k, 0)) for k in FAULT_KINDS),
                      sum(c.get(k, 0) for k in FAULT_KINDS),
                      c.get('requests', 0)), flush=True)
        print('torture: ownership: %d takeovers (%d after a clean stop, %d of '
              'a dead host, %d by force from a live one: it refused writes '
              'within %d ms at most, lease %d s), %d refused to a second '
              'host, %d returns of the previous owner' % (
                  s['takeovers'], s['takeover_handover'], s['takeover_dead'],
                  s['takeover_force'], s['deposed_ms_max'], self.args.lease,
                  s['takeovers_refused'], s['came_back']), flush=True)


# ------------------------------------------------------------------ main

class Paths:
    """The programs under test: from --build, else from make check's
    environment, else from _build/ next to this directory."""

    def __init__(self, build):
        here = os.path.dirname(os.path.abspath(__file__))
        env = os.environ if build is None else {}
        build = build or os.path.join(here, '..', '_build')
        self.plugin = env.get('LAZYVOL_PLUGIN') or os.path.join(
            build, 'plugin', '.libs', 'nbdkit-lazyvol-plugin.so')
        self.lazyvold = env.get('LAZYVOLD') or os.path.join(build, 'ctl',
                                                            'lazyvold')
        self.store_tool = env.get('STORE_TOOL') or os.path.join(
            build, 'tests', 'store-tool')
        self.store_proxy = env.get('STORE_PROXY') or os.path.join(
            build, 'tests', 'store-proxy')
        self.srcdir = here


def start_s3(dirname, srcdir):
    """A local S3 store (tests/s3-server.sh) for a campaign run by hand,
    evaluating conditional puts as test-torture-s3.sh's does."""
    r = subprocess.run([os.path.join(srcdir, 's3-server.sh'), 'start',
                        dirname, 'cond-put'], stdout=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit('torture: the local S3 store did not start')
    env = dict(line.split('=', 1) for line in
               r.stdout.decode().splitlines() if '=' in line)
    os.environ['AWS_ACCESS_KEY_ID'] = env['S3_ACCESS_KEY']
    os.environ['AWS_SECRET_ACCESS_KEY'] = env['S3_SECRET_KEY']
    return [('storage-backend', 's3'), ('bucket', env['S3_BUCKET']),
            ('endpoint-url', env['S3_ENDPOINT']), ('retries', '2'),
            ('timeout', '10')]


def main():
    ap = argparse.ArgumentParser(
        description='A seeded random campaign against lazyvol, checked '
        'against a model after every step.',
        epilog='STORE-PARAM: plugin parameters naming the store, as '
        'functions.sh\'s STORE_ARGS (storage-backend=s3 bucket=B '
        'endpoint-url=URL ...); default: a file store in DIR/bucket.')
    ap.add_argument('--seed', default='1',
                    help='the seed, or "random" (default 1)')
    ap.add_argument('--steps', type=int, default=0,
                    help='run this many steps (default 200 without '
                    '--duration)')
    ap.add_argument('--duration', type=float, default=0,
                    help='or steps for this many seconds')
    ap.add_argument('--mode', choices=('plugin', 'daemon', 'mixed'),
                    default='mixed',
                    help='run nbdkit directly, lazyvold, or either at each '
                    'start (default)')
    ap.add_argument('--no-crash-points', dest='crash_points',
                    action='store_false',
                    help='no crash-point steps (for a plugin built without)')
    ap.add_argument('--s3', action='store_true',
                    help='start a local S3 store (tests/s3-server.sh, with '
                    'conditional puts)')
    ap.add_argument('--no-faults', dest='faults', action='store_false',
                    help='no store-fault steps (by default an S3 store is '
                    'reached through tests/store-proxy, which injects them)')
    ap.add_argument('--faults', dest='fault_list', metavar='KIND,...',
                    help='inject only these kinds of store fault (of %s)'
                    % ', '.join(FAULT_KINDS))
    ap.add_argument('--dir', help='scratch directory (default: a new one '
                    'under $TMPDIR, removed unless the campaign fails)')
    ap.add_argument('--build', help='the build tree (default: '
                    '$LAZYVOL_PLUGIN etc. under make check, else _build)')
    ap.add_argument('--weight', action='append', default=[],
                    metavar='STEP=W', help='change the weight of a kind of '
                    'step (0: never), to aim a campaign; repeatable')
    ap.add_argument('--object-max', metavar='SIZE|none|seed', default='seed',
                    help='the largest object lazyvol writes '
                    '(LAZYVOL_TEST_OBJECT_MAX; a blob larger is split into '
                    'pieces): a size (1M), none (S3\'s 5 TiB), or drawn '
                    'from the seed (default)')
    ap.add_argument('--lease', type=int, default=6, metavar='SECS',
                    help='the hosts\' lease period (default 6: a takeover '
                    'of a dead host waits 9 s)')
    ap.add_argument('--verbose', '-v', action='store_true',
                    help='print every step')
    ap.add_argument('store', nargs='*', metavar='STORE-PARAM')
    args = ap.parse_args()
    args.seed = random.SystemRandom().randrange(1 << 32) \
        if args.seed == 'random' else int(args.seed)
    args.fault_kinds = args.fault_list.split(',') if args.fault_list \
        else FAULT_KINDS
    if not set(args.fault_kinds) <= set(FAULT_KINDS):
        ap.error('--faults: kinds are %s' % ', '.join(FAULT_KINDS))
    args.weights = {k: float(v) for k, v in
                    (w.split('=', 1) for w in args.weight)}
    if args.object_max == 'seed':
        maxes = OBJECT_MAXES
        args.object_max = maxes[random.Random(args.seed ^ 0x0b7ec7).randrange(
            len(maxes))]
    elif args.object_max == 'none':
        args.object_max = None
    else:
        m = re.match(r'([0-9]+)([KMG]?)$', args.object_max)
        if not m or int(m.group(1)) == 0:
            ap.error('--object-max: a size (1048576, 64K, 3M), none or seed')
        args.object_max = int(m.group(1)) << {'': 0, 'K': 10, 'M': 20,
                                              'G': 30}[m.group(2)]
    # Every host inherits it (the checks read args.object_max).
    if args.object_max:
        os.environ['LAZYVOL_TEST_OBJECT_MAX'] = str(args.object_max)
    else:
        os.environ.pop('LAZYVOL_TEST_OBJECT_MAX', None)
    if not args.steps and not args.duration:
        args.steps = 200
    paths = Paths(args.build)
    for tool in ('nbdkit',):
        if shutil.which(tool) is None:
            sys.exit('torture: FAIL: %s is not installed' % tool)
    for f in (paths.plugin, paths.lazyvold, paths.store_tool):
        if not os.access(f, os.R_OK):
            sys.exit('torture: FAIL: %s is missing (build first)' % f)
    if args.crash_points:
        out = subprocess.run(['nbdkit', paths.plugin, '--dump-plugin'],
                             stdout=subprocess.PIPE).stdout.decode()
        if 'lazyvol_crash_points=yes' not in out.splitlines():
            sys.exit('torture: FAIL: the plugin has no crash points: '
                     'configure --enable-crash-points (or --no-crash-points)')
    made_dir = args.dir is None
    args.dir = os.path.abspath(args.dir or tempfile.mkdtemp(
        prefix='torture.', dir=os.environ.get('TMPDIR', '/tmp')))
    os.makedirs(args.dir, exist_ok=True)
    s3dir = None
    if args.s3:
        s3dir = os.path.join(args.dir, 's3')
        params = start_s3(s3dir, paths.srcdir)
    else:
        params = [tuple(p.split('=', 1)) for p in args.store] or \
            [('storage-backend', 'file'),
             ('bucket', os.path.join(args.dir, 'bucket'))]
    store = Store(dict(params), paths.store_tool)
    print('torture: seed %d, %s, %s store, hosts as %s, objects up to %s, '
          'in %s' % (args.seed, '%d steps' % args.steps if args.steps else
                     '%d s' % args.duration, store.backend, args.mode,
                     '%d bytes (blobs split into pieces)' % args.object_max
                     if args.object_max else '5 TiB', args.dir), flush=True)
    faults = StoreFaults()
    if args.faults and store.backend == 's3':
        if not os.access(paths.store_proxy, os.X_OK):
            sys.exit('torture: FAIL: %s is missing (build first, or '
                     '--no-faults)' % paths.store_proxy)
        faults = ProxyFaults(paths.store_proxy, dict(params)['endpoint-url'],
                             os.path.join(args.dir, 'proxy'), args.seed,
                             args.fault_kinds)
    camp = Campaign(args, paths, store, params, faults)

    def at_exit():
        faults.stop()
        if s3dir:
            subprocess.run([os.path.join(paths.srcdir, 's3-server.sh'),
                            'stop', s3dir])
    camp.at_exit = at_exit
    status = 0
    try:
        secs = camp.run()
        camp.summary(secs)
    except (Exception, KeyboardInterrupt) as ex:   # noqa: B902 (reported)
        why = str(ex) if isinstance(ex, Failure) else \
            '%s: %s\n%s' % (type(ex).__name__, ex, traceback.format_exc())
        camp.report(why)
        camp.cleanup()
        camp.summary(time.monotonic() - camp.t_start)
        status = 1
    finally:
        camp.done = True
        if camp.at_exit:
            camp.at_exit()
    if status == 0 and made_dir:
        shutil.rmtree(args.dir, ignore_errors=True)
    elif status:
        print('torture: logs and state kept in %s' % args.dir)
    return status


if __name__ == '__main__':
    sys.exit(main())
