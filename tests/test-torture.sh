#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# A short torture campaign (tests/torture.py, with a fixed seed): a
# seeded random sequence of writes, flushes, FUA, trims, zeroes,
# snapshots, compacts, clones, deletes, resets, close and open, snapshot
# views, hydration, concurrent writers, clean restarts of nbdkit and of
# lazyvold, lazyvold restarted alone, nbdkit killed under lazyvold,
# kill -9 of the whole process tree at random moments, kills at every
# named crash point, other hosts taking over or refused, gc, and (on
# S3) store faults through tests/store-proxy; the seed may split blobs
# into pieces (a small object limit).  After every step the
# exports read as the model says (after a crash: each byte as last
# flushed or as written since), every new snapshot is the model's image
# chunk by chunk (manifest hashes, blob bytes, its read-only view), and
# the bucket's heads, chains, manifests and blobs are whole, with
# generations and owner epochs that never go backwards, and only the
# owner moves a head.  A failure prints the seed, the
# step and the command that replays it; README "Torture" says how to run
# a long campaign.
. "$srcdir/functions.sh"
requires nbdkit "$LAZYVOLD" "$STORE_TOOL" /usr/bin/python3
/usr/bin/python3 -c 'import nbd' || fail "python3-libnbd is not installed"
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
# About a minute each on two cores.
case ${LAZYVOL_TEST_BACKEND:-file} in
    file) seed=20241201 steps=400 ;;
    s3) seed=20241202 steps=180 ;;
esac
/usr/bin/python3 "$abs_top_srcdir/tests/torture.py" --seed $seed \
    --steps $steps --dir "$tmp/torture" -- "${STORE_ARGS[@]}"
