#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# test-publish-parts.sh against a signature-validating S3 server (Swift).
LAZYVOL_TEST_BACKEND=s3 exec "$srcdir/test-publish-parts.sh"
