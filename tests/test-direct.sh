#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Direct mode: nbdkit lazyvol cache-dir=DIR remote-prefix=exports/vm01
# serves that one export, its cache in DIR itself, through the user's
# flow -- create (over the control socket, its id the prefix's), write,
# snapshot, compact, reset, reopen -- under the default export name ""
# (what nbd-client without -N and qemu nbd://host ask for) and its id.
# No other export can be created, cloned or opened.  snapshot=ID serves
# one snapshot read-only from a cache directory of its own.  The head is
# volume.json; refs/current.json is its copy, equal after every move,
# rewritten from volume.json when it disagrees, and a copy whose
# volume.json is missing is reported, never loaded; a crash between the
# two puts is repaired at the restart.  Bad direct-mode
# parameters stop nbdkit with a reason.
. "$srcdir/functions.sh"
requires nbdkit nbdinfo nbdcopy qemu-io jq cmp
tmp=$(make_tmpdir)
start_store "$tmp"
MiB=1048576
dir=$tmp/vm01-cache
nbd=$tmp/nbd.sock
ctlsock=$tmp/ctl.sock
log=$tmp/nbdkit.log
# start_direct [PARAMS...]: the direct-mode nbdkit of this test.
start_direct ()
{
    rm -f "$ctlsock"
    start_nbdkit "$nbd" "cache-dir=$dir" remote-prefix=exports/vm01 \
        "control=$ctlsock" ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} "$@" 2>>"$log"
    wait_for 30 test -S "$ctlsock" || fail "control socket did not appear"
}
# heads_agree: volume.json and refs/current.json are the same head.
heads_agree ()
{
    store_tool get exports/vm01/volume.json > "$tmp/volume.json"
    store_tool get exports/vm01/refs/current.json > "$tmp/current.json"
    jq -S . "$tmp/volume.json" > "$tmp/a"
    jq -S . "$tmp/current.json" > "$tmp/b"
    cmp "$tmp/a" "$tmp/b"
}
head_snapshot () { store_tool get exports/vm01/volume.json | jq -r .snapshot_id; }

# Bad parameters: nbdkit does not start, and says why.
bad ()
{
    local want=$1
    shift
    if nbdkit -U - "$LAZYVOL_PLUGIN" ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} \
            "$@" --run true 2> "$tmp/bad.log"; then
        fail "accepted: $*"
    fi
    matches -F -e "$want" "$tmp/bad.log" || fail "no reason for $*: $(cat "$tmp/bad.log")"
}
bad 'direct mode needs both cache-dir=DIR and remote-prefix=PREFIX' "cache-dir=$dir"
bad 'direct mode needs both' remote-prefix=exports/vm01 "cache-root=$tmp/c"
bad 'replace cache-root and export-root' "cache-dir=$dir" remote-prefix=exports/vm01 "cache-root=$tmp/c"
bad 'replace cache-root and export-root' "cache-dir=$dir" remote-prefix=exports/vm01 export-root=x
bad 'discover does not apply to direct mode' "cache-dir=$dir" remote-prefix=exports/vm01 discover=false
bad 'snapshot=ID needs direct mode' "cache-root=$tmp/c" snapshot=0195d4f7a7c84b8d9a4cf59d1c4c7c9e
bad 'snapshot must be a snapshot id' "cache-dir=$dir" remote-prefix=exports/vm01 snapshot=nope
for p in '' exports/.vm01 '/vm01' 'exports/a b' exports/vm01@x /x/vm01 exports//vm01; do
    bad 'remote-prefix must be an export root and an export id' "cache-dir=$dir" "remote-prefix=$p"
done
[ ! -e "$dir" ] || fail "a refused start left $dir"

# A new export: nothing is loaded until it is created, by its own id.
start_direct
[ "$(ctl '{"cmd":"list"}' | jq '.exports | length')" = 0 ]
ctl '{"cmd":"create","export_id":"vm02","size":67108864}' 2>"$tmp/err" &&
    fail "created another export"
matches -F 'this process serves export vm01 alone (direct mode), not vm02' "$tmp/err"
r=$(ctl '{"cmd":"create","export_id":"vm01","size":67108864}')
[ "$(field "$r" chunk_count)" = 16 ]
# The cache is the directory itself, with the cache id; no per-export folder.
[ -f "$dir/cache.raw" ] && [ -f "$dir/cache.meta" ] && [ -s "$dir/.cache-id" ]
[ ! -e "$dir/vm01" ]
ctl '{"cmd":"open","export_id":"vm02"}' 2>"$tmp/err" && fail "opened another export"
matches -F 'serves export vm01 alone' "$tmp/err"
# The default export and the id are the same export.
nbdinfo --size "nbd+unix:///?socket=$nbd" | matches -x 67108864
nbdinfo --size "nbd+unix:///vm01?socket=$nbd" | matches -x 67108864

# Write, snapshot: the head and its copy agree.
qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 2 20M 4M' \
    "nbd+unix:///?socket=$nbd" >/dev/null
r=$(ctl '{"cmd":"snapshot","export_id":"vm01"}')
s1=$(field "$r" snapshot_id)
[ "$(field "$r" generation)" = 1 ]
[ "$(head_snapshot)" = "$s1" ]
heads_agree
nbdcopy "nbd+unix:///?socket=$nbd" "$tmp/s1.img"
# A clone into another export is refused before anything is written.
ctl "{\"cmd\":\"clone\",\"export_id\":\"vm03\",\"source_export_id\":\"vm01\"}" 2>"$tmp/err" &&
    fail "cloned into another export"
matches -F 'not vm03' "$tmp/err"
[ -z "$(store_tool list exports/vm03/)" ]

# Write, compact: a base, the head and its copy on it.
qemu-io -f raw -c 'write -P 3 40M 4M' "nbd+unix:///?socket=$nbd" >/dev/null
r=$(ctl '{"cmd":"compact","export_id":"vm01"}')
s2=$(field "$r" snapshot_id)
[ "$(field "$r" generation)" = 2 ]
store_tool head "exports/vm01/snapshots/$s2/base.blob" >/dev/null
[ "$(head_snapshot)" = "$s2" ]
heads_agree
nbdcopy "nbd+unix:///?socket=$nbd" "$tmp/s2.img"

# Reset drops a write never published; the published image stays.
qemu-io -f raw -c 'write -P 4 0 4M' "nbd+unix:///?socket=$nbd" >/dev/null
[ "$(field "$(ctl '{"cmd":"status","export_id":"vm01"}')" dirty_chunks)" = 1 ]
wait_for 30 no_clients vm01
r=$(ctl '{"cmd":"reset","export_id":"vm01"}')
[ "$(field "$r" dirty_chunks)" = 0 ]
nbdcopy "nbd+unix:///?socket=$nbd" "$tmp/reset.img"
cmp "$tmp/s2.img" "$tmp/reset.img"

# Reopen: a new process finds the export by itself, written chunks kept.
qemu-io -f raw -c 'write -P 5 60M 1M' "nbd+unix:///?socket=$nbd" >/dev/null
stop_lazyvol
start_direct
st=$(ctl '{"cmd":"status","export_id":"vm01"}')
[ "$(field "$st" snapshot_generation)" = 2 ]
[ "$(field "$st" dirty_chunks)" = 1 ]
# A close is not remembered in direct mode: the next start loads the
# export, and an open after it finds it loaded.
ctl '{"cmd":"close","export_id":"vm01"}' >/dev/null
[ ! -e "$dir/.closed/vm01" ] || fail "direct mode recorded a close"
stop_lazyvol
start_direct
st=$(ctl '{"cmd":"status","export_id":"vm01"}') || fail "not loaded after a close: $st"
[ "$(field "$st" dirty_chunks)" = 1 ]
# read_back ARGS...: qemu-io reads with patterns, every one verified.
read_back ()
{
    local out
    out=$(qemu-io -f raw "$@" "nbd+unix:///?socket=$nbd")
    if printf '%s\n' "$out" | matches 'Pattern verification failed'; then
        fail "read back: $out"
    fi
    [ "$(printf '%s\n' "$out" | grep -c '^read ')" = $(( $# / 2 )) ]
}
read_back -c 'read -P 5 60M 1M' -c 'read -P 3 40M 4M'

# One snapshot, read-only, from a cache directory of its own.
sock2=$tmp/snap.sock
main_pid=$nbdkit_pid
start_nbdkit "$sock2" "cache-dir=$tmp/snap-cache" remote-prefix=exports/vm01 \
    "snapshot=$s1" "control=$tmp/snap.ctl" ${STORE_ARGS[@]+"${STORE_ARGS[@]}"}
wait_for 30 test -S "$tmp/snap.ctl"
nbdinfo --json "nbd+unix:///?socket=$sock2" > "$tmp/info"
jq -e --arg n "vm01@$s1" '.exports[0]["export-name"] == $n and
    .exports[0]["is_read_only"] == true' "$tmp/info" >/dev/null
nbdcopy "nbd+unix:///?socket=$sock2" "$tmp/view.img"
cmp "$tmp/s1.img" "$tmp/view.img"
nbdcopy "nbd+unix:///vm01@$s1?socket=$sock2" "$tmp/view2.img"
cmp "$tmp/s1.img" "$tmp/view2.img"
"$abs_top_srcdir/tests/ctl.py" "$tmp/snap.ctl" '{"cmd":"open","export_id":"vm01"}' \
    2>"$tmp/err" && fail "the snapshot process opened the export"
matches -F "serves the read-only snapshot vm01@$s1 alone" "$tmp/err"
[ -f "$tmp/snap-cache/vm01@$s1/cache.meta" ]
kill_wait "$nbdkit_pid"
nbdkit_pid=$main_pid
# A snapshot that does not exist stops nbdkit (once started) with the
# reason.
rc=0
timeout 60 nbdkit -f -U "$tmp/none.sock" "$LAZYVOL_PLUGIN" \
    ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} "cache-dir=$tmp/snap-cache" \
    remote-prefix=exports/vm01 snapshot=0195d4f7a7c84b8d9a4cf59d1c4c7c9e \
    2> "$tmp/bad.log" || rc=$?
[ "$rc" = 1 ] || fail "nbdkit ended with $rc: $(cat "$tmp/bad.log")"
matches -F 'snapshot 0195d4f7a7c84b8d9a4cf59d1c4c7c9e of export vm01 does not exist' "$tmp/bad.log"

# A copy that disagrees (here: the first snapshot's head, as a tool that
# lost the last moves would leave it) is rewritten from volume.json.
stop_lazyvol
store_tool get exports/vm01/volume.json > "$tmp/good.json"
jq -c --arg s "$s1" '.snapshot_id = $s | .generation = 1' "$tmp/good.json" > "$tmp/stale.json"
store_tool put exports/vm01/refs/current.json "$tmp/stale.json" >/dev/null
: > "$log"
start_direct
matches -F 'refs/current.json disagrees with volume.json (it names another head): rewritten from volume.json' "$log" || fail "$(cat "$log")"
heads_agree
[ "$(head_snapshot)" = "$s2" ]
# A copy that does not parse, too.
stop_lazyvol
printf 'not json' > "$tmp/junk"
store_tool put exports/vm01/refs/current.json "$tmp/junk" >/dev/null
: > "$log"
start_direct
matches -F 'refs/current.json disagrees with volume.json' "$log"
heads_agree

# A crash between the two puts: volume.json moved, its copy did not; the
# restart makes them agree on the new head.
stop_lazyvol
requires_crash_points
crash_at publish.after_head start_direct
qemu-io -f raw -c 'write -P 6 50M 1M' "nbd+unix:///?socket=$nbd" >/dev/null
if ctl '{"cmd":"snapshot","export_id":"vm01"}'; then fail "survived publish.after_head"; fi
wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
s3=$(head_snapshot)
[ "$s3" != "$s2" ]
[ "$(store_tool get exports/vm01/refs/current.json | jq -r .snapshot_id)" = "$s2" ]
start_direct
heads_agree
[ "$(head_snapshot)" = "$s3" ]
read_back -c 'read -P 6 50M 1M' -c 'read -P 5 60M 1M'

# A copy with no volume.json is reported and not loaded; the export is
# back once volume.json is.
stop_lazyvol
store_tool get exports/vm01/volume.json > "$tmp/good.json"
store_tool delete exports/vm01/volume.json
: > "$log"
start_direct
matches -F "export vm01 has no exports/vm01/volume.json, but exports/vm01/refs/current.json names snapshot $s3 (generation 3): it is not used" "$log"
[ "$(ctl '{"cmd":"list"}' | jq '.exports | length')" = 0 ]
store_tool put exports/vm01/volume.json "$tmp/good.json" >/dev/null
ctl '{"cmd":"open","export_id":"vm01"}' >/dev/null
read_back -c 'read -P 5 60M 1M'
echo OK
