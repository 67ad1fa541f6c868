#!/usr/bin/env bash
# test-seed-sequence.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-seed-sequence.sh"
