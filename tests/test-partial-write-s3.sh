#!/usr/bin/env bash
# test-partial-write.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-partial-write.sh"
