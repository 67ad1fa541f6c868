#!/usr/bin/env bash
# test-second-writer.sh against Swift evaluating If-Match on PUT, so the
# head moves by a real compare-and-swap (the -s3 variant runs stock Swift,
# which answers 501 and gets the read-check-write fallback).
LAZYVOL_TEST_BACKEND=s3 LAZYVOL_TEST_S3_CONDPUT=1 exec "$srcdir/test-second-writer.sh"
