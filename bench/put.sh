#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# put.sh FILE KEY: the "one curl PUT" peer of run.sh.  Stores FILE as
# KEY on the S3 store in S3_ENDPOINT / S3_BUCKET with one SigV4-signed
# PUT from curl, prints the seconds the transfer took (curl's own
# time_total: starting curl is not timed, nor is hashing FILE before,
# as x-amz-content-sha256 wants), then deletes the object.  Credentials:
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, region S3_REGION (see
# s3-netrc.sh).
set -e
set -u
set -o pipefail

[ $# = 2 ] || { echo "usage: put.sh FILE KEY" >&2; exit 1; }
file=$1 key=$2
# shellcheck source=s3-netrc.sh
. "$(dirname "$0")/s3-netrc.sh" put
# s3req METHOD PAYLOAD-SHA256 CURL-ARGS...: one signed request to KEY.
s3req ()
{
    local method=$1 sha=$2
    shift 2
    curl --silent --show-error --fail --netrc-file "$tmp/netrc" \
         --aws-sigv4 "aws:amz:${S3_REGION:-us-east-1}:s3" \
         -H "x-amz-content-sha256: $sha" -X "$method" "$@" \
         "$S3_ENDPOINT/$S3_BUCKET/$key"
}

sha=$(sha256sum "$file")
secs=$(s3req PUT "${sha%% *}" -T "$file" -o /dev/null -w '%{time_total}')
s3req DELETE "$(sha256sum < /dev/null | cut -d' ' -f1)" -o /dev/null
echo "$secs"
