#!/usr/bin/env bash
# test-delete-snapshot.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-delete-snapshot.sh"
