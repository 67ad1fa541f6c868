#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# multipart.py FILE KEY: the "plain upload" peer of run.sh.  Uploads FILE
# as KEY to the S3 store in S3_ENDPOINT / S3_BUCKET (credentials from
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, region S3_REGION) with
# boto3's managed multipart upload in its default configuration (8 MiB
# parts, 10 threads), prints the seconds the upload took, then deletes
# the object.  Starting Python and boto3 and making the client are not
# timed, as lazyvol's process start is not timed either.
import os
import sys
import time

import boto3
from botocore.config import Config

if len(sys.argv) != 3:
    sys.exit("usage: multipart.py FILE KEY")
path, key = sys.argv[1], sys.argv[2]
bucket = os.environ["S3_BUCKET"]
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                  region_name=os.environ.get("S3_REGION", "us-east-1"),
                  config=Config(s3={"addressing_style": "path"}))
config = boto3.s3.transfer.TransferConfig()
t0 = time.monotonic()
s3.upload_file(path, bucket, key, Config=config)
t1 = time.monotonic()
if s3.head_object(Bucket=bucket, Key=key)["ContentLength"] != \
        os.path.getsize(path):
    sys.exit("multipart.py: %s: wrong size after upload" % key)
s3.delete_object(Bucket=bucket, Key=key)
print("%.6f" % (t1 - t0))
