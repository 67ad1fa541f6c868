#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# scale.py: what manifests cost at scale.  For each size N (listed
# chunks) and layout (contiguous: one extent; sparse: one extent per
# chunk, the worst case), build an export of S snapshots in a directory
# store, each snapshot's manifest listing all N chunks, then serve it
# with nbdkit and the plugin and measure, from the control socket and
# nbdkit's /proc/PID/status:
#
#   manifest    bytes of one manifest.json per listed chunk
#   open        time to open the export (fetch and parse the head's
#               manifest), nbdkit's RSS per chunk after it (steady) and
#               its peak during it (VmHWM, reset before with clear_refs)
#   list        time to list the S snapshots, three times, and the RSS
#               after the third (does it come back to steady?)
#   publish     time of a snapshot of one written chunk, and nbdkit's
#               peak RSS above steady during it
#   delete      time to delete the oldest snapshot (its blob is used by
#               the others, so every manifest is looked at)
#
# The exports are synthetic: written here as lazyvol writes them, with
# sparse blobs (nothing but the one written chunk is ever read), so that
# a 1M-chunk export costs its manifests' disk space and no data.
#
#   bench/scale.py [--build DIR] [--scratch DIR] [--sizes 1k,64k,256k,1M]
#                  [--layouts contiguous,sparse] [--snapshots S] [--keep]
#                  [--manifest-version 1|2] [--no-summaries]
#
# Manifests are written in version 2 (base64 hashes) with a summary.json
# each, as lazyvol publishes them; --manifest-version 1 --no-summaries
# writes what lazyvol wrote before (the list then reads every manifest).
#
# --snapshots defaults to 20 (the list figure scales with S; 200 of a
# 1M-chunk export is 16 GB of manifests).  Nothing is asserted: the
# table is printed for bench/README and the figures.
import argparse
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

CHUNK = 64 * 1024               # CHUNK_SIZE_MIN: small images, same manifests
HERE = os.path.dirname(os.path.abspath(__file__))


def parse_size(s):
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1].lower(), 1)
    return int(s[:-1] if mult > 1 else s) * mult


def snapshot_id(i):
    # UUIDv7-shaped, ordered by i: the time part counts snapshots.
    return "%012x7%03x8%015x" % (0x019000000000 + i, i % 4096, i)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def header(f, fmt, version, export, sid, parent, gen, image, blob_key):
    """The members a manifest and its summary share."""
    f.write('{\n  "format": "%s",\n  "version": %d,\n' % (fmt, version))
    f.write('  "export_id": "%s",\n  "snapshot_id": "%s",\n' % (export, sid))
    f.write('  "parent": %s,\n' % (json.dumps(parent) if parent else "null"))
    f.write('  "kind": "delta",\n  "generation": %d,\n' % gen)
    f.write('  "created": "%s",\n' % iso(time.time()))
    f.write('  "image_size": %d,\n  "chunk_size": %d,\n' % (image, CHUNK))
    f.write('  "blobs": [\n    {"key": "%s", "size": %d}\n  ],\n'
            % (blob_key, image))


def write_manifest(path, export, sid, parent, gen, n, sparse, blob_key,
                   version):
    """One manifest.json of N listed chunks, as lazyvol writes VERSION."""
    image = n * CHUNK
    with open(path, "w") as f:
        header(f, "lazyvol-manifest", version, export, sid, parent, gen,
               image, blob_key)
        f.write('  "extents": [')
        if version == 1:
            hashes = ['"%s"' % hashlib.sha256(b"%d" % c).hexdigest()
                      for c in range(n)]
        else:
            hashes = ['"%s"' % base64.b64encode(
                hashlib.sha256(b"%d" % c).digest()).decode()
                for c in range(n)]
        if sparse:
            # Chunk c at slot n-1-c: no two chunks can share a run.
            parts = ['\n    {"chunk": %d, "count": 1, "blob": 0, "offset": %d,'
                     ' "sha256": [\n      %s]}' % (c, (n - 1 - c) * CHUNK,
                                                   hashes[c])
                     for c in range(n)]
            f.write(",".join(parts))
        else:
            f.write('\n    {"chunk": 0, "count": %d, "blob": 0, "offset": 0,'
                    ' "sha256": [' % n)
            f.write(",".join("\n      " + h for h in hashes))
            f.write("]}")
        f.write("\n  ]\n}\n")
    return image


def write_summary(path, export, sid, parent, gen, n, blob_key, own):
    """Its summary.json (lazyvol-format(5), SUMMARY.JSON)."""
    with open(path, "w") as f:
        header(f, "lazyvol-summary", 1, export, sid, parent, gen, n * CHUNK,
               blob_key)
        f.write('  "chunks": %d,\n  "bytes": %d\n}\n'
                % (n, n * CHUNK if own else 0))


def build_export(bucket, export, n, sparse, nsnap, version, summaries):
    """Snapshots 1..NSNAP of EXPORT, all naming the first one's blob."""
    edir = os.path.join(bucket, "exports", export)
    first = snapshot_id(1)
    blob_key = "%s/snapshots/%s/delta.blob" % (export, first)
    parent = None
    for i in range(1, nsnap + 1):
        sid = snapshot_id(i)
        sdir = os.path.join(edir, "snapshots", sid)
        os.makedirs(sdir, mode=0o700)
        image = write_manifest(os.path.join(sdir, "manifest.json"), export,
                               sid, parent, i, n, sparse, blob_key, version)
        if summaries:
            write_summary(os.path.join(sdir, "summary.json"), export, sid,
                          parent, i, n, blob_key, i == 1)
        parent = sid
    with open(os.path.join(edir, "snapshots", first, "delta.blob"), "wb") as b:
        b.truncate(image)
    head = {"format": "lazyvol-volume", "version": 2, "export_id": export,
            "image_size": image, "chunk_size": CHUNK, "generation": nsnap,
            "snapshot_id": parent, "epoch": 0, "updated": iso(time.time())}
    for name in ("volume.json", "refs/current.json"):
        os.makedirs(os.path.dirname(os.path.join(edir, name)), exist_ok=True,
                    mode=0o700)
        with open(os.path.join(edir, name), "w") as f:
            json.dump(head, f, indent=2)
    return os.path.getsize(os.path.join(edir, "snapshots", first,
                                        "manifest.json"))


class Nbdkit:
    def __init__(self, build, scratch, bucket):
        self.ctl = os.path.join(scratch, "ctl.sock")
        self.sock = os.path.join(scratch, "nbd.sock")
        plugin = os.path.join(build, "plugin/.libs/nbdkit-lazyvol-plugin.so")
        self.log = open(os.path.join(scratch, "nbdkit.log"), "w")
        self.proc = subprocess.Popen(
            ["nbdkit", "-f", "-U", self.sock, plugin,
             "cache-root=" + os.path.join(scratch, "cache"),
             "storage-backend=file", "bucket=" + bucket,
             "control=" + self.ctl, "discover=false"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if os.path.exists(self.ctl):
                break
            time.sleep(0.05)
        else:
            sys.exit("scale.py: nbdkit did not start (see %s)" % self.log.name)

    def call(self, **req):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.ctl)
        f = s.makefile("rb")
        t0 = time.monotonic()
        s.sendall(json.dumps(req).encode() + b"\n")
        reply = json.loads(f.readline())
        t = time.monotonic() - t0
        s.close()
        if not reply.get("ok"):
            sys.exit("scale.py: %s: %s" % (req, reply.get("error")))
        return t, reply

    def status(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset_peak(self):
        with open("/proc/%d/clear_refs" % self.proc.pid, "w") as f:
            f.write("5")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def measure(args, n, layout):
    scratch = tempfile.mkdtemp(prefix="scale-", dir=args.scratch)
    bucket = os.path.join(scratch, "bucket")
    os.makedirs(bucket, mode=0o700)
    mbytes = build_export(bucket, "vm01", n, layout == "sparse",
                          args.snapshots, args.manifest_version,
                          not args.no_summaries)
    k = Nbdkit(args.build, scratch, bucket)
    row = {"n": n, "layout": layout, "manifest_b_per_chunk": mbytes / n}
    try:
        base = k.status("VmRSS")
        k.reset_peak()
        row["open_s"], _ = k.call(cmd="open", export_id="vm01")
        row["open_peak"] = (k.status("VmHWM") - base) / n
        steady = k.status("VmRSS")
        row["steady"] = (steady - base) / n
        lists = []
        for _ in range(3):
            t, _ = k.call(cmd="snapshots", export_id="vm01")
            lists.append(t)
        row["list_s"] = sorted(lists)[1]
        row["after_list"] = (k.status("VmRSS") - base) / n
        # One written chunk, published.
        subprocess.run(["qemu-io", "-f", "raw", "-c",
                        "write -P 7 0 %d" % CHUNK,
                        "nbd+unix:///vm01?socket=" + k.sock],
                       check=True, stdout=subprocess.DEVNULL)
        steady = k.status("VmRSS")
        k.reset_peak()
        row["publish_s"], _ = k.call(cmd="snapshot", export_id="vm01")
        row["publish_peak_mib"] = (k.status("VmHWM") - steady) / 2**20
        row["delete_s"], _ = k.call(cmd="delete_snapshot", export_id="vm01",
                                    snapshot_id=snapshot_id(1))
        row["after_all"] = (k.status("VmRSS") - base) / n
    finally:
        k.stop()
        if not args.keep:
            shutil.rmtree(scratch)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", default=os.path.join(HERE, "..", "_build"))
    p.add_argument("--scratch", default="/var/tmp")
    p.add_argument("--sizes", default="1k,64k,256k,1M")
    p.add_argument("--layouts", default="contiguous,sparse")
    p.add_argument("--snapshots", type=int, default=20)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--manifest-version", type=int, default=2, choices=(1, 2))
    p.add_argument("--no-summaries", action="store_true")
    args = p.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print("S = %d snapshots, each listing all N chunks (chunk size %d KiB), "
          "manifests of version %d, %s; RSS figures are bytes per listed "
          "chunk of nbdkit's resident set"
          % (args.snapshots, CHUNK // 1024, args.manifest_version,
             "no summaries" if args.no_summaries else "with summaries"))
    hdr = ("%-8s %-10s %8s %8s %9s %9s %8s %9s %9s %10s %8s %9s" %
           ("N", "layout", "B/chunk", "open s", "steady B", "peak B",
            "list s", "after 3L", "publish s", "pub +MiB", "delete s",
            "after all"))
    print(hdr)
    for n in sizes:
        for layout in args.layouts.split(","):
            r = measure(args, n, layout)
            print("%-8d %-10s %8.1f %8.3f %9.1f %9.1f %8.3f %9.1f %9.3f "
                  "%10.1f %8.3f %9.1f" %
                  (n, layout, r["manifest_b_per_chunk"], r["open_s"],
                   r["steady"], r["open_peak"], r["list_s"],
                   r["after_list"], r["publish_s"], r["publish_peak_mib"],
                   r["delete_s"], r["after_all"]), flush=True)


if __name__ == "__main__":
    main()
