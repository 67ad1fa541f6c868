#!/usr/bin/env bash
# test-stale-dirty.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-stale-dirty.sh"
