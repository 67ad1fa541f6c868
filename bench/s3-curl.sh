#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# s3-curl.sh: the plain curl peers of run.sh, on the S3 store in
# S3_ENDPOINT / S3_BUCKET, every request SigV4-signed by curl itself.
#
#   s3-curl.sh get KEY SIZE RANGE PARALLEL [OUTDIR]
#       fetch object KEY (SIZE bytes) with ranged GETs of RANGE bytes,
#       PARALLEL at a time, throwing the bytes away, or with OUTDIR
#       writing range N to OUTDIR/part.N
#   s3-curl.sh get-list KEY RANGE PARALLEL OFFSETS
#       fetch the RANGE bytes at each offset listed in the file OFFSETS
#       (one a line), PARALLEL at a time, throwing them away
#   s3-curl.sh put FILE KEY
#       store FILE as KEY with one PUT (payload unsigned: curl hashes
#       nothing), then delete it (untimed)
#
# Each checks that every byte arrived (or was stored) and prints the
# seconds the transfer took.  The GETs run in one curl process
# (--parallel, connections kept alive).  Credentials: AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY, region S3_REGION; they reach curl through a
# netrc file, never its command line (an access key may contain ':').
set -e
set -u
set -o pipefail

usage ()
{
    sed -n '6,16{s/^# \{0,1\}//;p}' "$0" >&2
    exit 1
}
[ $# -ge 1 ] || usage
verb=$1
shift
: "${S3_ENDPOINT:?}" "${S3_BUCKET:?}" "${AWS_ACCESS_KEY_ID:?}"
: "${AWS_SECRET_ACCESS_KEY:?}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/s3-curl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
host=${S3_ENDPOINT#*://}
host=${host%%/*}
host=${host%:*}
( umask 077
  printf 'machine %s login %s password %s\n' "$host" \
      "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$tmp/netrc" )

# S3 wants the payload's hash signed; curl does not add it by itself.
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# signing PAYLOAD-HASH: the config lines every request of KEY shares.
signing ()
{
    printf '%s\n' "url = \"$S3_ENDPOINT/$S3_BUCKET/$key\"" \
        "aws-sigv4 = \"aws:amz:${S3_REGION:-us-east-1}:s3\"" \
        "header = \"x-amz-content-sha256: $1\"" \
        "netrc-file = \"$tmp/netrc\"" \
        fail
}

# ranges OUTDIR: read "OFFSET LENGTH" lines and write one curl config
# block per range, separated by "next"; printf, a builtin, so that the
# script's CPU time (run.sh counts it) is curl's.
ranges ()
{
    local off len n=0
    while read -r off len; do
        [ "$n" = 0 ] || echo next
        signing "$empty_sha256"
        printf '%s\n' "range = \"$off-$(( off + len - 1 ))\"" \
            "output = \"${1:-/dev/null}${1:+/part.$n}\"" \
            'write-out = "%{size_download}\n"'
        n=$(( n + 1 ))
    done
}

# run_curl WANT CURL-ARGS...: run curl, which writes one byte count a
# request; check that they add up to WANT; print the seconds it took.
# curl 7.88 draws its --parallel progress meter even when silent: keep
# its stderr aside and show it only if something failed.
run_curl ()
{
    local want=$1 t0 t1 got
    shift
    t0=$(date +%s%N)
    curl --silent --show-error "$@" > "$tmp/sizes" 2> "$tmp/stderr" ||
        { tr '\r' '\n' < "$tmp/stderr" | grep -a 'curl: ' >&2; exit 1; }
    t1=$(date +%s%N)
    got=$(awk '{ n += $1 } END { printf "%d", n }' "$tmp/sizes")
    [ "$got" = "$want" ] ||
        { echo "s3-curl.sh: $key: moved $got bytes, want $want" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
}

case $verb in
    get)
        [ $# = 4 ] || [ $# = 5 ] || usage
        key=$1 size=$2 range=$3 parallel=$4
        for (( off = 0; off < size; off += range )); do
            echo "$off $(( off + range < size ? range : size - off ))"
        done | ranges "${5:-}" > "$tmp/config"
        run_curl "$size" --parallel --parallel-max "$parallel" \
            --config "$tmp/config"
        ;;
    get-list)
        [ $# = 4 ] || usage
        key=$1 range=$2 parallel=$3
        awk -v r="$range" '{ print $1, r }' "$4" | ranges > "$tmp/config"
        run_curl "$(( $(wc -l < "$4") * range ))" --parallel \
            --parallel-max "$parallel" --config "$tmp/config"
        ;;
    put)
        [ $# = 2 ] || usage
        key=$2
        { signing UNSIGNED-PAYLOAD
          printf '%s\n' "upload-file = \"$1\"" \
              'write-out = "%{size_upload}\n"'; } > "$tmp/config"
        run_curl "$(stat -c %s "$1")" --config "$tmp/config"
        signing "$empty_sha256" > "$tmp/config"
        curl --silent --show-error --config "$tmp/config" --request DELETE \
            > /dev/null
        ;;
    *)
        usage
        ;;
esac
