#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# test-torture.sh against S3: a local signature-checking store (Swift)
# that evaluates conditional puts, as AWS S3 and R2 do; the bucket is
# read with store-tool.
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-torture.sh"
