#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# lazyvold discovers the exports of the store itself, after nbdkit is up:
# - with discovery held (the test hook LAZYVOLD_TEST_HOLD_DISCOVERY),
#   /v1/health answers and NBD serves: an export not loaded yet is
#   refused as unknown; health says "held", nothing loaded;
# - once released: every export loaded but a broken one, which is
#   counted and named with its error in health; a folder without
#   volume.json is no export; the data reads back;
# - after nbdkit dies and is restarted, discovery runs again and counts
#   the same exports loaded; a lazyvold restarted alone (SIGUSR2) adopts
#   nbdkit and opens nothing ("adopted"): an export closed before stays
#   closed;
# - the plugin without lazyvold still discovers on its own (discover=,
#   default true), and lazyvold refuses --param discover=.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io nbdinfo
tmp=$(make_tmpdir)
start_store "$tmp"
health () { api GET /v1/health | jq -c "$1"; }

start_lazyvold "$tmp/d"
for e in a b c; do
    api POST /v1/exports/create "{\"export_id\":\"$e\",\"size\":4194304,\"chunk_size\":1048576}" >/dev/null
done
[ "$(health .discovery.state)" = '"done"' ] || fail "$(health .)"
qemu-io -f raw -c 'write -P 0x61 0 2M' "$(uri a)" >/dev/null
api POST /v1/exports/a/snapshot >/dev/null
stop_lazyvold
printf '{"format": 1' > "$tmp/junk"
store_tool put exports/broken/volume.json "$tmp/junk" >/dev/null
store_tool put exports/nohead/notes.txt "$tmp/junk" >/dev/null

# Held: serving, nothing loaded.
touch "$tmp/hold"
export LAZYVOLD_TEST_HOLD_DISCOVERY=$tmp/hold
start_lazyvold "$tmp/d"
[ "$(health '.discovery | [.state, .discovered, .loaded, .failed]')" = \
    '["held",0,0,0]' ] || fail "$(health .)"
nbdinfo --list "$(uri '')" > "$tmp/list" || fail "NBD does not serve"
s=0
nbdinfo "$(uri a)" > "$tmp/info" 2>&1 || s=$?
[ "$s" != 0 ] || fail "export a was served before it was loaded"
matches -Ei 'no such file|unknown|not found' "$tmp/info"
[ "$(api GET /v1/exports | jq '.exports | length')" = 0 ]

# Released.
rm "$tmp/hold"
wait_for 30 api_discovered || fail "discovery did not end: $(health .)"
unset LAZYVOLD_TEST_HOLD_DISCOVERY
h=$(health .discovery)
jq -e '.state == "done" and .discovered == 4 and .loaded == 3 and
    .failed == 1 and .failures[0].export_id == "broken" and
    (.failures[0].error | test("volume.json"))' <<<"$h" >/dev/null ||
    fail "$h"
[ "$(api GET /v1/exports | jq -c '[.exports[].export_id] | sort')" = \
    '["a","b","c"]' ] || fail "$(api GET /v1/exports)"
qemu-io -f raw -c 'read -P 0x61 0 2M' -c 'read -P 0 2M 2M' "$(uri a)" \
    >/dev/null || fail "wrong data in a"
matches 'discovery: export broken: ' "$tmp/d/lazyvold.log"

# nbdkit dies: restarted, discovered again.
kill -9 "$(nbdkit_pid_of "$tmp/d")"
wait_for 60 sh -c "curl -sS --unix-socket $admin http://localhost/v1/health |
    jq -e '.nbdkit_restarts == 1 and .discovery.state == \"done\"' >/dev/null" ||
    fail "not rediscovered after a restart: $(health .)"
[ "$(health '.discovery | [.loaded, .failed]')" = '[3,1]' ] ||
    fail "$(health .)"

# lazyvold alone restarted: it adopts nbdkit, whose exports stay as
# they were.
wait_for 30 api_no_clients a
api POST /v1/exports/a/close >/dev/null
stop_lazyvold USR2
start_lazyvold "$tmp/d"
[ "$(health '[.adopted, .discovery.state, .discovery.loaded]')" = \
    '[true,"adopted",0]' ] || fail "$(health .)"
[ "$(api GET /v1/exports | jq -c '[.exports[].export_id] | sort')" = \
    '["b","c"]' ] || fail "$(api GET /v1/exports)"
stop_lazyvold

# --param discover= is lazyvold's.
s=0
"$LAZYVOLD" serve --foreground --cache-root "$tmp/e" --param discover=true \
    > "$tmp/out" 2>&1 || s=$?
[ "$s" = 2 ] || fail "exit $s: $(cat "$tmp/out")"
matches -F -- '--param discover=true' "$tmp/out"

# The plugin on its own discovers the exports.
start_lazyvol "$tmp/p"
ctl '{"cmd":"list"}' | jq -e '[.exports[].export_id] | sort == ["a","b","c"]' \
    >/dev/null || fail "$(ctl '{"cmd":"list"}')"
echo OK
