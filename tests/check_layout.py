#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# check_layout.py ENDPOINT BUCKET PREFIX: check a lazyvol bucket with an
# independent S3 client (boto3), credentials from AWS_* variables.
#   - every volume.json and refs/current.json is valid JSON and agrees;
#   - the head names a manifest that exists;
#   - every manifest is valid JSON naming only blobs that exist, at their
#     recorded sizes, and every listed chunk lies inside its blob with the
#     recorded SHA-256 (the bytes are fetched with ranged GETs; a manifest
#     of version 1 writes it in hex, of version 2 in base64);
#   - a snapshot's own blob (each of its pieces) holds exactly the chunks
#     its manifest takes from it: no zero chunk, nothing unreferenced.
# Prints one line per snapshot; exits non-zero on the first violation.
import base64
import hashlib
import json
import re
import sys

import boto3
from botocore.config import Config

endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))


def digest(m, text):
    """The 32 bytes of a hash as manifest M writes them."""
    if m["version"] == 1:
        assert len(text) == 64, "%r is not 64 hex digits" % text
        return bytes.fromhex(text)
    assert len(text) == 44, "%r is not 44 base64 characters" % text
    return base64.b64decode(text, validate=True)


def get(key, rng=None):
    kw = {"Range": "bytes=%d-%d" % rng} if rng else {}
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


keys = {}
for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/"):
    for o in page.get("Contents", []):
        keys[o["Key"]] = o["Size"]

heads = [k for k in keys if k.endswith("/volume.json")]
assert heads, "no volume.json under %s/" % prefix
for hk in heads:
    export_dir = hk[:-len("volume.json")]
    head = json.loads(get(hk))
    refs = json.loads(get(export_dir + "refs/current.json"))
    assert refs == head, "%s: refs/current.json differs from the head" % hk
    if head["snapshot_id"]:
        mk = "%ssnapshots/%s/manifest.json" % (export_dir, head["snapshot_id"])
        assert mk in keys, "%s names a missing manifest %s" % (hk, mk)

for mk in sorted(k for k in keys if k.endswith("/manifest.json")):
    m = json.loads(get(mk))
    cs = m["chunk_size"]
    # The snapshot's own blob: KIND.blob, and KIND.N.blob for its further
    # pieces (a blob larger than the store's object limit is split).
    own_dir = mk[len(prefix) + 1:-len("manifest.json")]
    kind = "base" if m["kind"] == "base" else "delta"
    own_re = re.compile(re.escape(own_dir + kind) + r"(\.[1-9][0-9]*)?\.blob$")
    own_ranges = {}
    for i, b in enumerate(m["blobs"]):
        key = prefix + "/" + b["key"]
        assert key in keys, "%s names a missing blob %s" % (mk, key)
        assert keys[key] == b["size"], "%s: %s has %d bytes, not %d" % (
            mk, key, keys[key], b["size"])
    for x in m["extents"]:
        key = prefix + "/" + m["blobs"][x["blob"]]["key"]
        for k in range(x["count"]):
            chunk = x["chunk"] + k
            length = min(cs, m["image_size"] - chunk * cs)
            off = x["offset"] + k * cs
            data = get(key, (off, off + length - 1))
            assert len(data) == length, "%s: chunk %d short" % (mk, chunk)
            want = digest(m, x["sha256"][k])
            assert hashlib.sha256(data).digest() == want, \
                "%s: chunk %d does not match its SHA-256" % (mk, chunk)
            assert data.count(0) != length, "%s: chunk %d is all zeros" % (mk, chunk)
            if own_re.match(m["blobs"][x["blob"]]["key"]):
                own_ranges.setdefault(m["blobs"][x["blob"]]["key"],
                                      []).append((off, length))
    if m["kind"] != "clone":
        stored = [k[len(prefix) + 1:] for k in keys
                  if own_re.match(k[len(prefix) + 1:])]
        for piece in stored:
            assert piece in own_ranges, "%s: %s is not named" % (mk, piece)
        for piece, ranges in own_ranges.items():
            size = keys.get(prefix + "/" + piece, 0)
            ranges.sort()
            pos = 0
            for off, length in ranges:
                assert off == pos, "%s: gap or overlap in %s at %d" % (
                    mk, piece, off)
                pos += length
            assert pos == size, "%s: %s has %d bytes, chunks use %d" % (
                mk, piece, size, pos)
    print("%s: %s, generation %d, %d chunks from its own blob (%d pieces)" % (
        mk, m["kind"], m["generation"],
        sum(len(r) for r in own_ranges.values()), len(own_ranges)))
