#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# lazyvolctl drives every admin operation with the grammar and exit codes
# of lazyvolctl(8), against a real lazyvold on the file store: create,
# list, status, snapshot (with a label), snapshots, clone, compact,
# rollback (refused over unpublished writes, exit 4), resize,
# delete-snapshot,
# reset, hydrate, close, open (with a takeover), fork and health, each
# checked in its human output and, with --json, as parsed JSON.  Exit
# codes: 2 for bad usage (nothing is sent), 3 for an unknown export or
# snapshot, 4 for a conflict, 5 for bad remote data, 1 when lazyvold
# cannot be reached (the message names the socket).  A daemon's error is
# printed once, prefixed "lazyvolctl: ".  The socket: --socket, else
# $LAZYVOL_SOCKET, else the default that lazyvold listens on too,
# /run/lazyvol/admin.sock for root (its directory created 0700; /run is
# a tmpfs of this test's own mount namespace) and
# $XDG_RUNTIME_DIR/lazyvol/admin.sock for other users, who fall back on
# root's when theirs is missing.  --help and the
# man page name the same commands; the bash completion completes
# commands and export ids.
[ "${LAZYVOL_TEST_MOUNT_NS-}" = 1 ] || exec "$srcdir/in-mount-ns.sh" "$0" "$@"
. "$srcdir/functions.sh"
requires "$LAZYVOLD" "$LAZYVOLCTL" curl jq setpriv qemu-io nbdcopy cmp mount umount \
    unshare stat /usr/bin/python3
tmp=$(make_tmpdir)
mount -t tmpfs -o mode=0755 tmpfs /run || fail "cannot mount a tmpfs on /run"
cleanup_fn umount -l /run
start_store "$tmp"
start_lazyvold "$tmp/d"
export LAZYVOL_SOCKET=$admin

# lv STATUS ARGS...: lazyvolctl ARGS exits STATUS; stdout in $tmp/out,
# stderr in $tmp/err.
lv ()
{
    local want=$1 s=0
    shift
    "$LAZYVOLCTL" "$@" > "$tmp/out" 2> "$tmp/err" || s=$?
    [ "$s" = "$want" ] ||
        fail "lazyvolctl $*: exit $s, wanted $want: $(cat "$tmp/err")"
}
# lv_error STATUS MESSAGE ARGS...: lv STATUS ARGS, and stderr is the one
# line "lazyvolctl: MESSAGE".
lv_error ()
{
    local want=$1 msg=$2
    shift 2
    lv "$want" "$@"
    [ "$(cat "$tmp/err")" = "lazyvolctl: $msg" ] ||
        fail "lazyvolctl $*: stderr is not \"lazyvolctl: $msg\": $(cat "$tmp/err")"
}
# json PYTHON-EXPR: evaluate PYTHON-EXPR on the JSON in $tmp/out (as d).
json ()
{
    /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    sys.exit("false: %s\non %s" % (sys.argv[2], json.dumps(d, indent=1)))' \
        "$tmp/out" "$1"
}

# Usage errors: exit 2, and no request.
lv 2
lv 2 frobnicate
lv_error 2 'create wants ID SIZE [--chunk-size N] [--cache-max-size M] (try lazyvolctl help create)' create vm01
lv 2 create vm01 12Q
lv 2 create vm01 16M --chunk-size lots
lv 2 status 'no/such'
lv 2 delete-snapshot vm01 not-a-snapshot-id
lv 2 list --chunk-size 1M
lv 2 open vm01 --takeover --force-takeover
lv 2 open vm01 --cache-max-size lots
lv 2 status vm01 --cache-max-size 1G
lv 2 --colour red list
lv 0 list
[ "$(cat "$tmp/out")" = "no exports are loaded" ]

# --help, help COMMAND, --version; the man page's synopsis has the
# same commands as --help.
lv 0 --help
sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' "$tmp/out" | sort > "$tmp/help-cmds"
sed -n 's/^ lazyvolctl \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p' "$abs_top_srcdir/man/lazyvolctl.pod" |
    sort -u > "$tmp/man-cmds"
diff "$tmp/man-cmds" "$tmp/help-cmds"
[ "$(wc -l < "$tmp/help-cmds")" = 20 ]
lv 0 help create
matches -e '--chunk-size' "$tmp/out"
lv 0 --version
matches -Ex 'lazyvolctl [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out"

# create (IEC sizes), list, status.
lv 0 create vm01 16M --chunk-size 1MiB
[ "$(cat "$tmp/out")" = "created vm01: 16 MiB in 16 chunks of 1 MiB" ]
lv_error 4 'export vm01 already exists and is loaded' create vm01 16777216
lv 0 --json list
json '[e["export_id"] for e in d["exports"]] == ["vm01"] and d["exports"][0]["image_size"] == 16777216'
lv 0 list
matches -Ex 'EXPORT +SIZE +CHUNK +RESIDENT +DIRTY +GEN +OPERATION +NOTE' "$tmp/out"
matches -Ex 'vm01 +16 MiB +1 MiB +0/16 +0 +0 +idle *' "$tmp/out"
lv 0 list -q
[ "$(cat "$tmp/out")" = vm01 ]
lv_error 3 'no export named "nope" is loaded' status nope

qemu-io -f raw -c 'write -P 1 0 3M' "$(uri vm01)" >/dev/null
lv 0 status vm01
matches -x 'export      vm01' "$tmp/out"
matches -x 'snapshot    none yet' "$tmp/out"
matches -x 'size        16 MiB in 16 chunks of 1 MiB' "$tmp/out"
matches -x 'dirty       3 chunks, 3 MiB (19%)' "$tmp/out"
matches -x 'cache       3 MiB; all exports: 3 MiB, no budget' "$tmp/out"
matches -x 'operation   idle' "$tmp/out"
matches -x 'writable    yes' "$tmp/out"
matches -E '^owner       [^ ]+ \(this host\), epoch 1, since (just now|[0-9]+ s ago)$' "$tmp/out"
lv 0 --json status vm01
json 'd["dirty_chunks"] == 3 and d["writable"] is True'

# snapshot (--json prints no progress), snapshots.
lv 0 --json snapshot vm01
json 'd["snapshot_created"] is True and d["generation"] == 1'
[ ! -s "$tmp/err" ]
s1=$(jq -r .snapshot_id "$tmp/out")
nbdcopy "$(uri vm01)" "$tmp/s1.img"
lv 0 snapshot vm01
[ "$(cat "$tmp/out")" = "nothing to publish: vm01 has no writes since snapshot $s1" ]
lv 0 snapshot vm01 --label unused
[ "$(cat "$tmp/out")" = "nothing to publish: vm01 has no writes since snapshot $s1 (no snapshot was made, so the label was not used)" ]
qemu-io -f raw -c 'write -P 2 4M 1M' "$(uri vm01)" >/dev/null
lv 0 snapshot vm01
s2=$(sed -n 's/^published snapshot \([0-9a-f]\{32\}\) of vm01 (generation 2)$/\1/p' "$tmp/out")
[ -n "$s2" ]
lv 0 compact vm01
s3=$(sed -n 's/^compacted vm01 into snapshot \([0-9a-f]\{32\}\) (generation 3)$/\1/p' "$tmp/out")
[ -n "$s3" ]
nbdcopy "$(uri vm01)" "$tmp/s3.img"
lv 0 status vm01
matches -Ex "last op     compact done (just now|[0-9]+ s ago) in [0-9.]+ (ms|s): snapshot $s3 \(generation 3\)" "$tmp/out"
lv 0 snapshots vm01
matches -Ex 'SNAPSHOT +GEN +CREATED +SIZE +CHUNKS +KIND' "$tmp/out"
matches -Ex "$s1 +1 +(just now|[0-9]+ s ago) +3 MiB +3 +delta" "$tmp/out"
matches -Ex "$s3 +3 +(just now|[0-9]+ s ago) +4 MiB +4 +base \(current\)" "$tmp/out"
lv 0 snapshots vm01 -q
[ "$(cat "$tmp/out")" = "$(printf '%s\n' "$s1" "$s2" "$s3")" ]
lv 0 --json snapshots vm01
json '[s["generation"] for s in d["snapshots"]] == [1, 2, 3]'

# clone, from an older snapshot.
lv 0 clone vm02 vm01 --snapshot "$s1"
matches -Ex "cloned vm02 from vm01 at snapshot $s1: vm02's first snapshot is [0-9a-f]{32}" "$tmp/out"
nbdcopy "$(uri vm02)" "$tmp/vm02.img"
cmp "$tmp/s1.img" "$tmp/vm02.img"
lv 4 clone vm02 vm01
lv 3 clone vm03 nope
lv 0 --json clone vm03 vm01
json 'd["export_id"] == "vm03" and d["image_size"] == 16777216'

# A label, shown in its own column; rollback (over a write: exit 4 and
# nothing changes; --discard-local drops it), read back.  On an export
# of its own, vr.
lv 0 create vr 4M --chunk-size 1M
qemu-io -f raw -c 'write -P 6 0 2M' "$(uri vr)" >/dev/null
lv 0 snapshot vr
r1=$(sed -n 's/^published snapshot \([0-9a-f]\{32\}\) of vr (generation 1)$/\1/p' "$tmp/out")
nbdcopy "$(uri vr)" "$tmp/r1.img"
qemu-io -f raw -c 'write -P 7 0 1M' "$(uri vr)" >/dev/null
lv 0 snapshot vr --label 'before rollback'
r2=$(sed -n 's/^published snapshot \([0-9a-f]\{32\}\) of vr (generation 2)$/\1/p' "$tmp/out")
lv 0 snapshots vr
matches -Ex 'SNAPSHOT +GEN +CREATED +SIZE +CHUNKS +KIND +LABEL' "$tmp/out"
matches -Ex "$r2 +2 +(just now|[0-9]+ s ago) +1 MiB +2 +delta \(current\) +before rollback" "$tmp/out"
lv_error 2 "invalid --label: contains a control character (want at most 128 bytes of UTF-8 without control characters)" \
    snapshot vr --label "$(printf 'a\tb')"
qemu-io -f raw -c 'write -P 8 0 1M' "$(uri vr)" >/dev/null
lv 4 rollback vr "$r1"
matches '^lazyvolctl: rollback vr: 1 chunk is written and not published' "$tmp/err"
lv 0 rollback vr "$r1" --discard-local --label 'back to r1'
[ -n "$(sed -n "s/^rolled vr back to snapshot $r1: its new snapshot is \([0-9a-f]\{32\}\) (generation 3)\$/\1/p" "$tmp/out")" ]
nbdcopy "$(uri vr)" "$tmp/r3.img"
cmp "$tmp/r1.img" "$tmp/r3.img"
lv 0 --json snapshots vr
json 'd["snapshots"][-1]["label"] == "back to r1" and d["snapshots"][-1]["current"]'
lv 3 rollback vr 0180000000007000800000000000cafe
lv 2 rollback vr nope
lv 2 rollback vr "$r1" --delete
# resize: the status says the size waits for a snapshot; no shrinking.
lv 0 resize vr 8M
[ "$(cat "$tmp/out")" = "resized vr: 8 MiB in 8 chunks of 1 MiB; the next snapshot publishes it" ]
lv 0 status vr
matches -x 'size        8 MiB in 8 chunks of 1 MiB (resized: the next snapshot publishes it)' "$tmp/out"
lv 1 resize vr 2M
matches '^lazyvolctl: resize vr: 2097152 bytes is not larger than the image' "$tmp/err"
lv 2 resize vr 2X
lv 0 snapshot vr
lv 0 --json status vr
json 'd["image_size"] == 8388608 and d["pending_image_size"] is None'
wait_for 30 api_no_clients vr
lv 0 close vr

# delete-snapshot: 3 once gone, 4 for the current one.
lv 0 delete-snapshot vm01 "$s2"
matches -x "deleted snapshot $s2 of vm01.*" "$tmp/out"
lv 3 delete-snapshot vm01 "$s2"
lv 4 delete-snapshot vm01 "$s3"
[ "$(wc -l < "$tmp/err")" = 1 ] && matches '^lazyvolctl: ' "$tmp/err"

# reset, then hydrate back every chunk with data; health.
wait_for 30 api_no_clients vm01
lv 0 reset vm01
[ "$(cat "$tmp/out")" = "reset vm01: its local state is dropped; it reads as snapshot $s3" ]
lv 0 --json status vm01
json 'd["resident_chunks"] == 0'
lv 0 hydrate vm01
[ "$(cat "$tmp/out")" = "hydrated vm01: 4 of 16 chunks resident (4 MiB)" ]
lv 0 --json hydrate vm01
json 'd["operation_state"] == "idle" and d["resident_chunks"] == 4'
json 'd["last_operation"]["kind"] == "hydrate" and d["last_operation"]["result"] == "done"'
nbdcopy "$(uri vm01)" "$tmp/after.img"
cmp "$tmp/s3.img" "$tmp/after.img"
lv 0 health
matches -Ex "lazyvold [0-9.]+: ok, spawn mode, nbdkit pid $(nbdkit_pid_of "$tmp/d"), 0 nbdkit restarts, up .*" "$tmp/out"
lv 0 --json health
json 'd["status"] == "ok" and d["mode"] == "spawn"'

# open and close; open with a takeover; fork into an existing id.
lv 4 open vm01
wait_for 30 api_no_clients vm01
lv 0 close vm01
[ "$(cat "$tmp/out")" = "closed vm01" ]
lv 3 status vm01
lv 0 open vm01
[ "$(cat "$tmp/out")" = "opened vm01: 16 MiB in 16 chunks of 1 MiB, snapshot $s3 (generation 3)" ]
lv 0 close vm01
lv 0 --json open vm01 --force-takeover
json 'd["writable"] is True and d["owner"]["this_host"] is True'
lv 4 fork vm01 vm02

# --no-wait: started, not waited for; status says how it ended.
qemu-io -f raw -c 'write -P 5 8M 1M' "$(uri vm01)" >/dev/null
lv 0 snapshot vm01 --no-wait
[ "$(cat "$tmp/out")" = "started the snapshot of vm01; follow it with lazyvolctl status vm01" ]
[ ! -s "$tmp/err" ]
wait_for 30 sh -c "'$LAZYVOLCTL' status vm01 | grep -q '^operation   idle'"
lv 0 status vm01
matches -Ex "last op     snapshot done .*: snapshot [0-9a-f]{32} \(generation 4\)" "$tmp/out"
lv 0 --json compact vm01 --no-wait
json 'd["operation_state"] == "compacting"'
lv 2 hydrate vm01 --no-wait

# Bad remote data is an object-store failure: 5.
lv 0 close vm03
printf '{"not": "a volume"' > "$tmp/junk"
store_tool put exports/vm03/volume.json "$tmp/junk" >/dev/null
lv 5 open vm03

# Which socket.  --socket beats $LAZYVOL_SOCKET; nothing answering is
# exit 1 naming the socket.
lv_error 1 "cannot connect to lazyvold: no socket $tmp/none (No such file or directory); is lazyvold running?  Name its socket with --socket PATH or \$LAZYVOL_SOCKET" \
    --socket "$tmp/none" list
LAZYVOL_SOCKET=$tmp/none lv 0 list -q --socket "$admin"
[ "$(sort "$tmp/out" | tr '\n' ' ')" = "vm01 vm02 " ]
# --admin-sock, lazyvold's name for it, too.
LAZYVOL_SOCKET=$tmp/none lv 0 list -q --admin-sock "$admin"
[ "$(sort "$tmp/out" | tr '\n' ' ')" = "vm01 vm02 " ]
# Root's default: lazyvold without --admin-sock listens where lazyvolctl
# looks by default, in a directory it creates 0700.
"$LAZYVOLD" serve --foreground --plugin "$LAZYVOL_PLUGIN" \
    --cache-root "$tmp/e/cache" --listen "$tmp/e/nbd.sock" \
    >> "$tmp/e.log" 2>&1 &
other_pid=$!
cleanup_fn stop_lazyvold_at_exit "$other_pid" "$tmp/e/cache"
wait_for 30 env -u LAZYVOL_SOCKET "$LAZYVOLCTL" health >/dev/null 2>&1 ||
    fail "no lazyvold on the default socket: $(tail -5 "$tmp/e.log")"
[ "$(stat -c %a /run/lazyvol)" = 700 ] && [ -S /run/lazyvol/admin.sock ]
env -u LAZYVOL_SOCKET "$LAZYVOLCTL" create other 1M
[ "$(env -u LAZYVOL_SOCKET "$LAZYVOLCTL" list -q)" = other ]
[ "$("$LAZYVOLCTL" list -q | sort | tr '\n' ' ')" = "vm01 vm02 " ]
# Another user's default: $XDG_RUNTIME_DIR/lazyvol/admin.sock, or
# root's when that is missing (a member of the system service's group).
as_user () { unshare --map-user=1000 env -u LAZYVOL_SOCKET "$@"; }
[ "$(XDG_RUNTIME_DIR=$tmp/xdg as_user "$LAZYVOLCTL" list -q)" = other ]
[ "$(as_user -u XDG_RUNTIME_DIR "$LAZYVOLCTL" list -q)" = other ]
mkdir -p "$tmp/xdg/lazyvol"
ln -s "$admin" "$tmp/xdg/lazyvol/admin.sock"
[ "$(XDG_RUNTIME_DIR=$tmp/xdg as_user "$LAZYVOLCTL" list -q | sort | tr '\n' ' ')" = "vm01 vm02 " ]
rm "$tmp/xdg/lazyvol/admin.sock"
# Someone outside the socket's group (/run/lazyvol is 0700 here) is told
# permission is denied, not that there is no socket of their own.
s=0
setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -u LAZYVOL_SOCKET -u XDG_RUNTIME_DIR "$LAZYVOLCTL" list 2> "$tmp/err" || s=$?
[ "$s" = 1 ] && matches -F "cannot connect to lazyvold on /run/lazyvol/admin.sock: permission denied" "$tmp/err"
stop_lazyvold_at_exit "$other_pid" "$tmp/e/cache"
XDG_RUNTIME_DIR=$tmp/xdg as_user "$LAZYVOLCTL" list 2> "$tmp/err" && fail "connected"
matches -F "no socket $tmp/xdg/lazyvol/admin.sock" "$tmp/err"
s=0
as_user -u XDG_RUNTIME_DIR "$LAZYVOLCTL" list 2> "$tmp/err" || s=$?
[ "$s" = 2 ] && matches -F 'XDG_RUNTIME_DIR is not set' "$tmp/err"

# Bash completion of commands and export ids (bash-completion's
# _init_completion stood in for by its essentials).
COMPLETE=$abs_top_srcdir/completion/lazyvolctl LAZYVOLCTL_DIR=${LAZYVOLCTL%/*} \
    bash -c '
_init_completion () { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
    cur=${words[cword]}; prev=${words[cword-1]}; }
_filedir () { :; }
. "$COMPLETE"; PATH=$LAZYVOLCTL_DIR:$PATH
complete_words () { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _lazyvolctl
    echo "${COMPREPLY[*]}"; }
[ "$(complete_words lazyvolctl sn)" = "snapshot snapshots" ] &&
[ "$(complete_words lazyvolctl status vm | tr " " "\n" | sort | tr "\n" " ")" = "vm01 vm02 " ] &&
[ "$(complete_words lazyvolctl open vm01 --t)" = "--takeover" ]' ||
    fail "bash completion"
echo OK
