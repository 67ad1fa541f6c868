#!/usr/bin/env bash
# test-publish-crash.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-publish-crash.sh"
