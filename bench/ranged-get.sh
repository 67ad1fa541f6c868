#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# ranged-get.sh KEY SIZE RANGE PARALLEL [OUTDIR]: the "parallel curl"
# peer of run.sh.  Fetches object KEY (SIZE bytes) from the S3 store in
# S3_ENDPOINT / S3_BUCKET with SigV4-signed ranged GETs of RANGE bytes,
# PARALLEL at a time, from one curl process (--parallel, connections kept
# alive), throwing the bytes away, or with OUTDIR writing range N to
# OUTDIR/part.N; checks that SIZE bytes arrived and prints the seconds
# it took.  Credentials: AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, region S3_REGION; they reach curl through a
# netrc file, never its command line (an access key may contain ':').
set -e
set -u
set -o pipefail

[ $# = 4 ] || [ $# = 5 ] ||
    { echo "usage: ranged-get.sh KEY SIZE RANGE PARALLEL [OUTDIR]" >&2; exit 1; }
key=$1 size=$2 range=$3 parallel=$4 outdir=${5:-}
# shellcheck source=s3-netrc.sh
. "$(dirname "$0")/s3-netrc.sh" ranged-get

# S3 wants the payload's hash signed; curl does not add it by itself.
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# One curl config block per range, separated by "next"; printf, a
# builtin, so that the script's CPU time (run.sh counts it) is curl's.
for (( off = 0; off < size; off += range )); do
    end=$(( off + range < size ? off + range - 1 : size - 1 ))
    [ "$off" = 0 ] || echo next
    printf '%s\n' "url = \"$S3_ENDPOINT/$S3_BUCKET/$key\"" \
        "range = \"$off-$end\"" \
        "output = \"${outdir:-/dev/null}${outdir:+/part.$(( off / range ))}\"" \
        "aws-sigv4 = \"aws:amz:${S3_REGION:-us-east-1}:s3\"" \
        "header = \"x-amz-content-sha256: $empty_sha256\"" \
        "netrc-file = \"$tmp/netrc\"" \
        fail \
        'write-out = "%{size_download}\n"'
done > "$tmp/config"

# curl 7.88 draws its --parallel progress meter even when silent: keep
# its stderr aside and show it only if something failed.
t0=$(date +%s%N)
curl --silent --show-error --parallel --parallel-max "$parallel" \
     --config "$tmp/config" > "$tmp/sizes" 2> "$tmp/stderr" ||
    { tr '\r' '\n' < "$tmp/stderr" | grep -a 'curl: ' >&2; exit 1; }
t1=$(date +%s%N)
got=$(awk '{ n += $1 } END { printf "%d", n }' "$tmp/sizes")
[ "$got" = "$size" ] ||
    { echo "ranged-get.sh: $key: got $got bytes, want $size" >&2; exit 1; }
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
