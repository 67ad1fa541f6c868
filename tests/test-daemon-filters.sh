#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# --filter NAME stacks nbdkit filters in front of the plugin, in order,
# and --param KEY=VALUE configures them: with --filter retry --filter
# stats --param statsfile=FILE, clients read and write through the stack,
# and the stats filter writes its counts when lazyvold stops nbdkit.
# --log-level debug also runs nbdkit -v.  A filter that buffers writes
# out of lazyvol's sight (cow; cache unless cache=writethrough) is warned
# about at start and in every snapshot and compact reply; the others are
# not.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io nbdcopy cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp" --filter retry --filter stats \
    --param "statsfile=$tmp/stats" --log-level debug

head -c 2097152 /dev/zero | tr '\0' '\3' > "$tmp/img"
api POST /v1/exports/create '{"export_id":"f","size":2097152,"chunk_size":1048576}' >/dev/null
nbdcopy "$tmp/img" "$(uri f)"
nbdcopy "$(uri f)" "$tmp/out"
cmp "$tmp/img" "$tmp/out"
r=$(api POST /v1/exports/f/snapshot)
jq -e '.snapshot_created and (has("warning") | not)' <<<"$r" || fail "$r"
! grep -qE 'buffers writes|keeps every write' "$tmp/lazyvold.log" ||
    fail "a warning without a buffering filter"

n=$(nbdkit_pid_of "$tmp")
tr '\0' '\n' < "/proc/$n/cmdline" > "$tmp/cmdline"
grep -A1 -x -- '--filter=retry' "$tmp/cmdline" | matches -x -- '--filter=stats'
grep -qx -- -v "$tmp/cmdline"
grep -q 'nbdkit: debug:' "$tmp/lazyvold.log"

stop_lazyvold
[ "$lazyvold_status" = 0 ]
grep -E '^write: [0-9]+ ops' "$tmp/stats"
grep -E '^read: [0-9]+ ops' "$tmp/stats"

# buffered FILTER... -- PARAM...: lazyvold with these filters warns, at
# start and in snapshot and compact replies, with a message matching $want.
n=0
buffered ()
{
    local d=$tmp/b$((n += 1)) args=()
    for f; do
        [ "$f" = -- ] && break
        args+=(--filter "$f")
    done
    while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
    [ $# -gt 0 ] && shift
    for p; do args+=(--param "$p"); done
    start_lazyvold "$d" "${args[@]}"
    if [ -n "$want" ]; then
        matches "warning: $want" "$d/lazyvold.log"
    else
        ! grep -qE 'buffers writes|keeps every write' "$d/lazyvold.log" ||
            fail "a warning with ${args[*]}"
    fi
    for op in snapshot compact; do
        r=$(api POST "/v1/exports/f/$op")
        if [ -n "$want" ]; then
            jq -e --arg w "$want" '.warning | test($w)' <<<"$r" >/dev/null ||
                fail "$op: $r"
        else
            jq -e 'has("warning") | not' <<<"$r" >/dev/null || fail "$op: $r"
        fi
    done
    api POST /v1/exports/f/close >/dev/null
    stop_lazyvold
}
want='--filter cow keeps every write in nbdkit: no write reaches lazyvol'
buffered cow
want='--filter cache buffers writes in nbdkit until a client flushes'
buffered retry cache
cow=$(nbdkit --dump-config | sed -n 's/^filterdir=//p')/nbdkit-cow-filter.so
want="--filter $cow keeps every write"
buffered "$cow"
want=
buffered cache -- cache=writethrough
echo OK
