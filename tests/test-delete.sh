#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Deleting an export, and closing one for good (lazyvold(8), DELETE).
#  - refused, and nothing lost, while a client is connected (busy), while
#    writes are unpublished (busy, unless discard_local), and with
#    "remote" on a host that does not own it (read_only);
#  - a remote delete killed (kill -9) at each of its steps
#    (delete.after_head, delete.after_manifest, delete.before_owner)
#    leaves no head: the export is not loaded at the restart, and the
#    same delete finishes it; the source's folder then holds exactly the
#    blobs its clone names, and the clone reads all its bytes from an
#    empty cache; once the clone is deleted too, deleting the source
#    again takes those blobs;
#  - a delete racing NBD connects and opens is refused (busy) or wins;
#    an open racing it fails, never loads it again;
#  - another host that had the export loaded keeps going (status), and
#    does not load it at its restart;
#  - a closed export, and one deleted locally only, is not loaded at the
#    next start; opened again, it is loaded at the next;
#    (the plugin's discovery and lazyvold's alike);
#  - lazyvolctl delete says what it removed; a refusal exits 4.
. "$srcdir/functions.sh"
requires nbdkit nbdinfo qemu-io jq /usr/bin/python3 "$LAZYVOLD" "$LAZYVOLCTL"
requires_crash_points
tmp=$(make_tmpdir)
start_store "$tmp"
status () { ctl "{\"cmd\":\"status\",\"export_id\":\"$1\"}"; }
code () { printf '%s' "$1" | jq -r .code; }
put () { qemu-io -f raw -c "write -P $2 $3 $4" -c flush "$(uri "$1")" >/dev/null; }
snap () { field "$(ctl "{\"cmd\":\"snapshot\",\"export_id\":\"$1\"}")" snapshot_id; }
del () { ctl "{\"cmd\":\"delete\",\"export_id\":\"$1\"${2:+,$2}}"; }
keys () { store_tool list "exports/$1/" | cut -d' ' -f1 | sort; }
# The source e: s1 (chunks 0-1 0x11), s2 (chunk 1 0x22), cloned as c,
# then s3 (chunk 2 0x33), which c does not name.
make_pair ()
{
    ctl "{\"cmd\":\"create\",\"export_id\":\"$1\",\"size\":4194304,\"chunk_size\":1048576}" >/dev/null
    put "$1" 0x11 0 2M
    s1=$(snap "$1")
    put "$1" 0x22 1M 1M
    s2=$(snap "$1")
    ctl "{\"cmd\":\"clone\",\"export_id\":\"$2\",\"source_export_id\":\"$1\"}" >/dev/null
    put "$1" 0x33 2M 1M
    s3=$(snap "$1")
}
# The clone reads s2's image from an empty cache.
clone_reads ()
{
    ctl "{\"cmd\":\"reset\",\"export_id\":\"$1\"}" >/dev/null
    [ "$(field "$(status "$1")" resident_chunks)" = 0 ]
    qemu-io -r -f raw -c 'read -P 0x11 0 1M' -c 'read -P 0x22 1M 1M' \
        -c 'read -P 0 2M 2M' "$(uri "$1")" >/dev/null ||
        fail "clone $1 does not read its image"
}

start_lazyvol "$tmp/a" host-id=hosta
make_pair e c

# A connected client.
/usr/bin/python3 -c 'import nbd, os, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1]); open(sys.argv[2], "w").close()
while os.path.exists(sys.argv[2]): time.sleep(0.05)
h.shutdown()' "$(uri e)" "$tmp/held" &
held=$!
wait_for 30 test -e "$tmp/held" || fail "the client did not connect"
r=$(del e '"remote":true') && fail "deleted under a client: $r"
[ "$(code "$r")" = busy ] || fail "$r"
rm "$tmp/held"
wait "$held"
wait_for 30 no_clients e || fail "the client stays"

# Unpublished writes.
put e 0x44 3M 1M
r=$(del e '"remote":true') && fail "deleted unpublished writes: $r"
[ "$(code "$r")" = busy ] && printf '%s' "$r" | matches unpublished || fail "$r"
qemu-io -r -f raw -c 'read -P 0x44 3M 1M' "$(uri e)" >/dev/null
store_tool head exports/e/volume.json >/dev/null

# Another host, which loads e read-only, may not delete it remotely.
a_ctl=$ctlsock a_nbd=$nbd a_pid=$nbdkit_pid
start_lazyvol "$tmp/b" host-id=hostb
[ "$(field "$(status e)" writable)" = false ]
r=$(del e '"remote":true') && fail "a non-owner deleted e: $r"
[ "$(code "$r")" = read_only ] || fail "$r"
b_ctl=$ctlsock b_nbd=$nbd b_pid=$nbdkit_pid
ctlsock=$a_ctl nbd=$a_nbd nbdkit_pid=$a_pid

# Deleted (the unpublished write discarded) by its owner, killed after
# the head: e is gone from the store's view, c reads on.
stop_lazyvol
crash_at delete.after_head start_lazyvol "$tmp/a" host-id=hosta
die ()
{
    if ctl "$1"; then fail "$1 survived its crash point"; fi
    wait_for 30 sh -c "! kill -0 $nbdkit_pid 2>/dev/null" || fail "nbdkit lives"
}
die '{"cmd":"delete","export_id":"e","remote":true,"discard_local":true}'
! store_tool head exports/e/volume.json 2>/dev/null || fail "e has a head"
start_lazyvol "$tmp/a" host-id=hosta
a_ctl=$ctlsock a_nbd=$nbd a_pid=$nbdkit_pid
r=$(status e) && fail "e was loaded without a head: $r"
clone_reads c
# Host b still has e loaded: its status answers; a restart skips e.
ctlsock=$b_ctl nbd=$b_nbd nbdkit_pid=$b_pid
[ "$(field "$(status e)" export_id)" = e ]
stop_lazyvol
start_lazyvol "$tmp/b" host-id=hostb
r=$(status e) && fail "host b loaded e again: $r"
stop_lazyvol
ctlsock=$a_ctl nbd=$a_nbd nbdkit_pid=$a_pid

# finished E C S1 S2: the delete of E is finished (again): E's folder
# holds the blobs of S1 and S2 that clone C names, and nothing else.
finished ()
{
    r=$(del "$1" '"remote":true,"discard_local":true') || fail "finishing the delete of $1: $r"
    [ "$(printf '%s' "$r" | jq .store.used)" -ge 2 ] || fail "$r"
    keys "$1" > "$tmp/left"
    grep -v -e "/snapshots/$3/" -e "/snapshots/$4/" "$tmp/left" &&
        fail "left in $1: $(cat "$tmp/left")"
    grep -c "\.blob" "$tmp/left" | matches -x 2 || fail "$(cat "$tmp/left")"
    store_tool list "exports/.refs/$1/" | matches "$3/$2" || fail "no marker"
    clone_reads "$2"
}
finished e c "$s1" "$s2"
[ "$(printf '%s' "$r" | jq .store.snapshots)" = 3 ]
# The cache the killed delete left is gone with the rest, and says so.
[ "$(printf '%s' "$r" | jq .cache_removed)" = true ] || fail "$r"
[ ! -e "$tmp/a/cache/e" ] || fail "the killed delete's cache of e is left"

# The other steps, each on a pair of its own.
for point in delete.after_manifest delete.before_owner; do
    p=p${point#delete.} q=q${point#delete.}
    p=${p//_/-} q=${q//_/-}
    make_pair "$p" "$q"
    stop_lazyvol
    crash_at $point start_lazyvol "$tmp/a" host-id=hosta
    die "{\"cmd\":\"delete\",\"export_id\":\"$p\",\"remote\":true}"
    ! store_tool head "exports/$p/volume.json" 2>/dev/null || fail "$p has a head"
    start_lazyvol "$tmp/a" host-id=hosta
    r=$(status "$p") && fail "$p loaded without a head: $r"
    clone_reads "$q"
    finished "$p" "$q" "$s1" "$s2"
done

# Once the clone is deleted too, a delete of the source takes the rest.
r=$(del c '"remote":true') || fail "$r"
r=$(del e '"remote":true') || fail "$r"
[ "$(printf '%s' "$r" | jq '.store.objects | length')" = 2 ] || fail "$r"
keys e | matches . && fail "left in e: $(keys e)"
r=$(del e '"remote":true') && fail "deleted e twice: $r"
[ "$(code "$r")" = not_found ] || fail "$r"
ls "$tmp/a/cache/e" 2>/dev/null && fail "e's cache is left"

# A delete racing NBD connects and opens: each connect sees the export
# or no export, each refusal of the delete is "busy" (or, between an
# unload and a load, "not_found": not loaded here), an open gets
# already_exists or not_found; after it the export is gone, the plugin
# serves on.
ctl '{"cmd":"create","export_id":"r","size":1048576,"chunk_size":1048576}' >/dev/null
put r 0x66 0 1M
snap r >/dev/null
( set +x; while [ ! -e "$tmp/stop" ]; do nbdinfo --size "$(uri r)" >/dev/null 2>&1 || :; done ) &
connects=$!
( set +x; while [ ! -e "$tmp/stop" ]; do
      o=$(ctl '{"cmd":"open","export_id":"r"}' 2>&1) && echo "opened: $o"
      printf '%s\n' "$o" | grep -v -e already_exists -e not_found || :
  done > "$tmp/opens" ) &
opens=$!
deleted=
for i in $(seq 200); do
    if r=$(del r '"remote":true'); then deleted=1; break; fi
    case $(code "$r") in busy|not_found) ;; *) fail "delete racing: $r" ;; esac
done
touch "$tmp/stop"
wait $connects $opens
[ -n "$deleted" ] || fail "the delete never got the export"
[ ! -s "$tmp/opens" ] || fail "opens: $(cat "$tmp/opens")"
nbdinfo --size "$(uri r)" 2>/dev/null && fail "r is served after its delete"
store_tool head exports/r/volume.json 2>/dev/null && fail "r has a head"
[ "$(field "$(status qbefore-owner)" export_id)" = qbefore-owner ]

# A closed export, and one deleted here only, stay unloaded at restarts
# until opened again.
ctl '{"cmd":"create","export_id":"k","size":1048576,"chunk_size":1048576}' >/dev/null
ctl '{"cmd":"create","export_id":"l","size":1048576,"chunk_size":1048576}' >/dev/null
ctl '{"cmd":"close","export_id":"k"}' >/dev/null
r=$(del l) || fail "$r"
[ "$(field "$r" remote)" = false ]
test -d "$tmp/a/cache/l" && fail "l's cache is left"
store_tool head exports/l/volume.json >/dev/null
[ "$(store_tool get exports/k/owner.json | jq -r .host_id)" = null ] ||
    fail "close kept the ownership"
stop_lazyvol
start_lazyvol "$tmp/a" host-id=hosta
r=$(status k) && fail "closed k was loaded: $r"
r=$(status l) && fail "deleted l was loaded: $r"
status qbefore-owner >/dev/null
ctl '{"cmd":"open","export_id":"k"}' >/dev/null
ctl '{"cmd":"open","export_id":"l"}' >/dev/null
stop_lazyvol
start_lazyvol "$tmp/a" host-id=hosta
status k >/dev/null && status l >/dev/null
stop_lazyvol

# lazyvolctl, on lazyvold.
start_lazyvold "$tmp/d" --host-id hostd
lv () { "$LAZYVOLCTL" --socket "$admin" "$@"; }
lv create x 2M --chunk-size 1M >/dev/null
qemu-io -f raw -c 'write -P 0x55 0 1M' -c flush "$(uri x)" >/dev/null
e=0; lv delete x --remote 2> "$tmp/err" || e=$?
[ $e = 4 ] && matches unpublished "$tmp/err" || fail "exit $e: $(cat "$tmp/err")"
lv delete x --remote --discard-local > "$tmp/out"
matches -x 'deleted x: its local cache, its head and 0 snapshots from the store' \
    "$tmp/out" || fail "$(cat "$tmp/out")"
e=0; lv delete x --remote 2> "$tmp/err" || e=$?
[ $e = 3 ] || fail "exit $e: $(cat "$tmp/err")"
# lazyvold's own discovery skips a closed export too.
lv create y 1M --chunk-size 1M >/dev/null
lv close y >/dev/null
stop_lazyvold
start_lazyvold "$tmp/d" --host-id hostd
e=0; lv status y 2>/dev/null || e=$?
[ $e = 3 ] || fail "closed y: exit $e"
lv open y >/dev/null
echo OK
