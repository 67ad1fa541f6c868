#!/usr/bin/env bash
# test-second-writer.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-second-writer.sh"
