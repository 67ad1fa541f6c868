#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# lazyvold serve --cache-dir DIR --remote-prefix exports/vm01: the admin
# API over one export in direct mode, through the user's flow with curl
# -- create (its id the prefix's; another id is a 400 and writes
# nothing), write over the default NBD export, snapshot, compact, reset,
# and a restart of lazyvold that finds the export again (discovery
# counts it, and only it) with its unpublished write.  The head and its
# copy refs/current.json agree after every move; the run directory is
# DIR/.lazyvold.  Direct-mode flags that do not go together are usage
# errors (exit status 2) with a reason.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io nbdcopy cmp
tmp=$(make_tmpdir)
start_store "$tmp"
d=$tmp/d
dir=$d/cache

usage ()
{
    local want=$1 rc=0
    shift
    "$LAZYVOLD" serve --foreground "$@" 2>"$tmp/usage.log" || rc=$?
    [ "$rc" = 2 ] || fail "lazyvold $* ended with $rc"
    matches -F -e "$want" "$tmp/usage.log" || fail "no reason: $(cat "$tmp/usage.log")"
}
usage 'direct mode needs both --cache-dir DIR and --remote-prefix ROOT/ID' --cache-dir "$tmp/x"
usage 'direct mode needs both' --remote-prefix exports/vm01 --cache-root "$tmp/x"
usage '--remote-prefix must be an export root and an export id' \
    --cache-dir "$tmp/x" --remote-prefix /x/vm01
usage 'replace --cache-root and --export-root' --cache-dir "$tmp/x" \
    --remote-prefix exports/vm01 --export-root exports
usage 'replace --cache-root and --export-root' --cache-dir "$tmp/x" \
    --remote-prefix exports/vm01 --cache-root "$tmp/y"
usage '--param remote-prefix=x: use --remote-prefix instead' --cache-root "$tmp/x" \
    --param remote-prefix=x
[ ! -e "$tmp/x" ] && [ ! -e "$tmp/y" ]

heads_agree ()
{
    store_tool get exports/vm01/volume.json | jq -S . > "$tmp/a"
    store_tool get exports/vm01/refs/current.json | jq -S . > "$tmp/b"
    cmp "$tmp/a" "$tmp/b"
}
dflt="nbd+unix:///?socket=$d/nbd.sock"

LAZYVOLD_DIRECT=exports/vm01 start_lazyvold "$d"
[ -d "$dir/.lazyvold" ] && [ -S "$dir/.lazyvold/control.sock" ]
api GET /v1/exports | jq -e '.exports == []' >/dev/null
api_expect 400 POST /v1/exports/create '{"export_id":"vm02","size":16777216}' |
    jq -e '.error | contains("serves export vm01 alone (direct mode), not vm02")' >/dev/null
[ -z "$(store_tool list exports/vm02/)" ]
r=$(api_expect 201 POST /v1/exports/create '{"export_id":"vm01","size":16777216}')
jq -e '.export_id == "vm01" and .chunk_count == 4' <<<"$r" >/dev/null
[ -f "$dir/cache.meta" ]

qemu-io -f raw -c 'write -P 1 0 1M' "$dflt" >/dev/null
r=$(api POST /v1/exports/vm01/snapshot)
jq -e '.snapshot_created == true and .generation == 1' <<<"$r" >/dev/null
heads_agree
qemu-io -f raw -c 'write -P 2 8M 1M' "$dflt" >/dev/null
r=$(api POST /v1/exports/vm01/compact)
jq -e '.generation == 2' <<<"$r" >/dev/null
s2=$(jq -r .snapshot_id <<<"$r")
store_tool head "exports/vm01/snapshots/$s2/base.blob" >/dev/null
heads_agree
nbdcopy "$dflt" "$tmp/s2.img"

qemu-io -f raw -c 'write -P 3 0 4M' "$dflt" >/dev/null
wait_for 30 api_no_clients vm01
r=$(api POST /v1/exports/vm01/cache/reset)
jq -e '.dirty_chunks == 0' <<<"$r" >/dev/null
nbdcopy "$dflt" "$tmp/reset.img"
cmp "$tmp/s2.img" "$tmp/reset.img"

# Restart: the export is found again, with a write never published.
qemu-io -f raw -c 'write -P 4 12M 1M' "$dflt" >/dev/null
stop_lazyvold
[ "$lazyvold_status" = 0 ]
LAZYVOLD_DIRECT=exports/vm01 start_lazyvold "$d"
api GET /v1/health | jq -e '.discovery.state == "done" and
    .discovery.discovered == 1 and .discovery.loaded == 1' >/dev/null
api GET /v1/exports/vm01/status |
    jq -e '.snapshot_generation == 2 and .dirty_chunks == 1' >/dev/null
out=$(qemu-io -f raw -c 'read -P 4 12M 1M' -c 'read -P 2 8M 1M' "$dflt")
if printf '%s\n' "$out" | matches 'Pattern verification failed'; then
    fail "read back: $out"
fi
[ "$(printf '%s\n' "$out" | grep -c '^read ')" = 2 ]
echo OK
