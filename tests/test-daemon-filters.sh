#!/usr/bin/env bash
# --filter NAME stacks nbdkit filters in front of the plugin, in order,
# and --param KEY=VALUE configures them: with --filter retry --filter
# stats --param statsfile=FILE, clients read and write through the stack,
# and the stats filter writes its counts when lazyvold stops nbdkit.
# --log-level debug also runs nbdkit -v.
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
api POST /v1/exports/f/snapshot | jq -e '.snapshot_created'

n=$(nbdkit_pid_of "$tmp")
tr '\0' '\n' < "/proc/$n/cmdline" > "$tmp/cmdline"
grep -A1 -x -- '--filter=retry' "$tmp/cmdline" | matches -x -- '--filter=stats'
grep -qx -- -v "$tmp/cmdline"
grep -q 'nbdkit: debug:' "$tmp/lazyvold.log"

stop_lazyvold
[ "$lazyvold_status" = 0 ]
grep -E '^write: [0-9]+ ops' "$tmp/stats"
grep -E '^read: [0-9]+ ops' "$tmp/stats"
echo OK
