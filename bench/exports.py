#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# exports.py: what many exports and snapshot views cost one lazyvold.
#
#   views    an export of S snapshots (--snapshots, default 200,1000),
#            opened by lazyvold; then `nbdinfo --list` against it, three
#            times (the first, and the median), with what they leave
#            behind: nbdkit's RSS,
#            its open file descriptors, the cache directories under the
#            cache root, and the exports GET /v1/exports shows
#   exports  M exports (--exports, default 100,500,1000) of one snapshot
#            each; lazyvold started on them, timed until its discovery
#            ends; then GET /v1/exports (median of five), the size of
#            GET /v1/metrics, and nbdkit's descriptors and RSS per export
#
# The exports are synthetic (small manifests of 16 chunks of 64 KiB,
# sparse blobs), written into a directory store as lazyvol writes them
# (bench/scale.py's writer).  Nothing is asserted: the table is printed
# for bench/README and the figures.
#
#   bench/exports.py [--build DIR] [--scratch DIR] [--snapshots 200,1000]
#                    [--exports 100,500,1000] [--keep]
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scale  # noqa: E402  (the synthetic export writer)

CHUNKS = 16


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class Lazyvold:
    def __init__(self, build, scratch, bucket):
        self.admin = os.path.join(scratch, "admin.sock")
        self.nbd = os.path.join(scratch, "nbd.sock")
        self.cache = os.path.join(scratch, "cache")
        self.log = open(os.path.join(scratch, "lazyvold.log"), "w")
        plugin = os.path.join(build, "plugin/.libs/nbdkit-lazyvol-plugin.so")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [os.path.join(build, "ctl/lazyvold"), "serve", "--foreground",
             "--plugin", plugin, "--cache-root", self.cache,
             "--listen", self.nbd, "--admin-sock", self.admin,
             "--storage-backend", "file", "--bucket", bucket],
            stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path, ok=(200,)):
        c = UnixHTTP(self.admin)
        t0 = time.monotonic()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        t = time.monotonic() - t0
        c.close()
        if r.status not in ok:
            sys.exit("exports.py: GET %s: %d %s" % (path, r.status, body[:200]))
        return t, body

    def wait_discovered(self):
        """Seconds from the start until discovery has ended."""
        while True:
            if self.proc.poll() is not None:
                sys.exit("exports.py: lazyvold exited (see %s)" % self.log.name)
            try:
                _, body = self.get("/v1/health", ok=(200, 503))
                state = json.loads(body).get("discovery", {}).get("state")
                if state in ("done", "failed", "off"):
                    return time.monotonic() - self.t0
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.01)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cache_dirs(d):
    return len(os.listdir(d)) if os.path.isdir(d) else 0


def nbdkit_of(d):
    """nbdkit's pid, as /v1/health says."""
    _, body = d.get("/v1/health")
    return json.loads(body)["nbdkit_pid"]


def views(args, s):
    scratch = tempfile.mkdtemp(prefix="exports-", dir=args.scratch)
    bucket = os.path.join(scratch, "bucket")
    os.makedirs(bucket, mode=0o700)
    scale.build_export(bucket, "vm01", CHUNKS, False, s, 2, True)
    d = Lazyvold(args.build, scratch, bucket)
    try:
        d.wait_discovered()
        pid = nbdkit_of(d)
        rss, nfd, ndir = proc_status(pid, "VmRSS"), fds(pid), \
            cache_dirs(d.cache)
        _, body = d.get("/v1/exports")
        listed = len(json.loads(body)["exports"])
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            out = subprocess.run(["nbdinfo", "--list",
                                  "nbd+unix:///?socket=" + d.nbd],
                                 capture_output=True, text=True)
            times.append(time.monotonic() - t0)
            if out.returncode != 0:
                sys.exit("exports.py: nbdinfo --list failed: %s" % out.stderr)
        seen = out.stdout.count("export=")
        _, body = d.get("/v1/exports")
        row = {
            "s": s, "first_s": times[0], "list_s": statistics.median(times),
            "spread": max(times) - min(times), "seen": seen,
            "rss_mb": (proc_status(pid, "VmRSS") - rss) / 1e6,
            "fds": fds(pid) - nfd, "dirs": cache_dirs(d.cache) - ndir,
            "loaded": len(json.loads(body)["exports"]) - listed,
        }
    finally:
        d.stop()
        if not args.keep:
            shutil.rmtree(scratch)
    return row


def exports(args, m):
    scratch = tempfile.mkdtemp(prefix="exports-", dir=args.scratch)
    bucket = os.path.join(scratch, "bucket")
    os.makedirs(bucket, mode=0o700)
    for i in range(m):
        scale.build_export(bucket, "e%04d" % i, CHUNKS, False, 1, 2, True)
    d = Lazyvold(args.build, scratch, bucket)
    try:
        disc = d.wait_discovered()
        pid = nbdkit_of(d)
        times = []
        for _ in range(5):
            t, body = d.get("/v1/exports")
            times.append(t)
        loaded = len(json.loads(body)["exports"])
        _, metrics = d.get("/v1/metrics")
        row = {
            "m": m, "loaded": loaded, "discover_s": disc,
            "list_ms": statistics.median(times) * 1000,
            "spread_ms": (max(times) - min(times)) * 1000,
            "metrics_kb": len(metrics) / 1000,
            "fds_per": fds(pid) / m, "rss_kb_per": proc_status(pid, "VmRSS")
            / m / 1000,
        }
    finally:
        d.stop()
        if not args.keep:
            shutil.rmtree(scratch)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", default=os.path.join(HERE, "..", "_build"))
    p.add_argument("--scratch", default="/var/tmp")
    p.add_argument("--snapshots", default="200,1000")
    p.add_argument("--exports", default="100,500,1000")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    if args.snapshots:
        print("views: one export of S snapshots, `nbdinfo --list` (median "
              "of 3) and what it leaves in nbdkit")
        print("%-6s %8s %8s %8s %6s %8s %6s %6s %7s" %
              ("S", "first s", "list s", "spread", "seen", "+RSS MB", "+fds",
               "+dirs", "+loaded"))
        for s in (int(x) for x in args.snapshots.split(",")):
            r = views(args, s)
            print("%-6d %8.3f %8.3f %8.3f %6d %8.1f %6d %6d %7d" %
                  (r["s"], r["first_s"], r["list_s"], r["spread"], r["seen"],
                   r["rss_mb"],
                   r["fds"], r["dirs"], r["loaded"]), flush=True)
    if args.exports:
        print("exports: M exports of one snapshot each, discovered by "
              "lazyvold at start")
        print("%-6s %7s %10s %9s %9s %10s %7s %9s" %
              ("M", "loaded", "discover s", "list ms", "spread", "metrics KB",
               "fds/E", "RSS KB/E"))
        for m in (int(x) for x in args.exports.split(",")):
            r = exports(args, m)
            print("%-6d %7d %10.2f %9.1f %9.1f %10.1f %7.2f %9.1f" %
                  (r["m"], r["loaded"], r["discover_s"], r["list_ms"],
                   r["spread_ms"], r["metrics_kb"], r["fds_per"],
                   r["rss_kb_per"]), flush=True)


if __name__ == "__main__":
    main()
