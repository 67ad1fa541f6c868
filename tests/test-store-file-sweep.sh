#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# store_sweep_temps removes a temporary file of the file store only when
# its writer is gone.  Every writer holds an exclusive flock on its
# temporary file for the file's whole life, and the sweep takes that lock
# without waiting and also wants the file untouched for 10 minutes (the
# grace covers the instant between creating a file and locking it).  So
# an old unlocked temporary file goes (a crashed put, or an upload begun
# and never finished), while an old one held locked by a live process, a
# fresh unlocked one, objects, temporary files outside the prefix and
# anything behind a symbolic link stay.  The sweep walks the prefix
# recursively, and refuses a prefix whose path is a link.
. "$srcdir/functions.sh"
requires flock touch sleep
tmp=$(make_tmpdir)
b=$tmp/bucket
st () { "$STORE_TOOL" --bucket "$b" "$@"; }
old='20 minutes ago'

echo x > "$tmp/x"
for k in p/obj p/deep/er/obj q/obj; do st put "$k" "$tmp/x" >/dev/null; done
touch -d "$old" "$b/p/obj"
touch -d "$old" "$b/p/.tmp.obj.put.orphan" "$b/p/deep/er/.tmp.obj.put.orphan" \
    "$b/p/.tmp.obj.put.locked" "$b/q/.tmp.obj.put.orphan"
touch "$b/p/.tmp.obj.put.fresh"
up=$(st begin-upload p/up)            # its process exits: a crashed upload
mkdir "$tmp/outside"
touch -d "$old" "$tmp/outside/.tmp.x.put.orphan"
ln -s "$tmp/outside" "$b/p/link"

# A live writer: this process holds the flock until it is killed.
( exec 9< "$b/p/.tmp.obj.put.locked"; flock 9; exec sleep 60 ) &
holder=$!
cleanup_fn kill_wait "$holder"
held () { ! flock -n "$b/p/.tmp.obj.put.locked" true; }
wait_for 30 held || fail "the lock was not taken"

# temps DIR: the temporary files in DIR, sorted, on one line.
temps ()
{
    local f out=
    [ -d "$1" ] || fail "no directory $1"
    for f in "$1"/.tmp.*; do
        if [ -e "$f" ]; then out+="${f##*/} "; fi
    done
    echo "$out"
}

st sweep-temps p/
[ "$(temps "$b/p")" = ".tmp.obj.put.fresh .tmp.obj.put.locked $up " ]
[ "$(temps "$b/p/deep/er")" = "" ]
[ "$(temps "$b/q")" = ".tmp.obj.put.orphan " ]
[ -e "$tmp/outside/.tmp.x.put.orphan" ]
[ "$(st list "" | cut -d' ' -f1 | tr '\n' ' ')" = "p/deep/er/obj p/obj q/obj " ]

# The writer dies; the crashed upload ages: both go, the fresh one stays.
kill_wait "$holder"
touch -d "$old" "$b/p/$up"
st sweep-temps p/
[ "$(temps "$b/p")" = ".tmp.obj.put.fresh " ]
st abort-upload p/up "$up"            # already gone: still fine

# An empty prefix is the whole bucket; a prefix through a link is refused.
st sweep-temps ""
[ "$(temps "$b/q")" = "" ]
if st sweep-temps p/link/ 2> "$tmp/err"; then fail "swept through a link"; fi
grep -q 'refused: a component is a symbolic link' "$tmp/err"
[ -e "$tmp/outside/.tmp.x.put.orphan" ]
echo OK
