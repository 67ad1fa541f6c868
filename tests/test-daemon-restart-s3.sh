#!/usr/bin/env bash
# test-daemon-restart.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-daemon-restart.sh"
