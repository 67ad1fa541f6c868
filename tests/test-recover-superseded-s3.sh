#!/usr/bin/env bash
# test-recover-superseded.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-recover-superseded.sh"
