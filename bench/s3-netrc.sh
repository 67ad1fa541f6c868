# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Sourced by the curl peers of run.sh (ranged-get.sh, put.sh): checks
# that the S3 store's variables are set (S3_ENDPOINT, S3_BUCKET,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), makes a scratch directory
# $tmp (removed on exit) and writes $tmp/netrc, through which the
# credentials reach curl, never its command line (an access key may
# contain ':').  $1: the scratch directory's name prefix.
: "${S3_ENDPOINT:?}" "${S3_BUCKET:?}" "${AWS_ACCESS_KEY_ID:?}"
: "${AWS_SECRET_ACCESS_KEY:?}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
host=${S3_ENDPOINT#*://}
host=${host%%/*}
host=${host%:*}
( umask 077
  printf 'machine %s login %s password %s\n' "$host" \
      "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$tmp/netrc" )
