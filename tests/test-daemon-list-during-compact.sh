#!/usr/bin/env bash
# A long operation holds only its own request.  While a compact of a
# 512 MiB export runs (its POST still waiting for the reply), GET
# /v1/exports and GET .../status answer, showing the export as
# "compacting" with progress; a second long operation on the same export
# (snapshot, compact, hydrate) gets 409 busy; then the compact's own
# request gets its result.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"

api POST /v1/exports/create '{"export_id":"big","size":536870912}' >/dev/null
qemu-io -f raw -c 'write -P 7 0 512M' "$(uri big)" >/dev/null

curl -sS --unix-socket "$admin" -X POST -o "$tmp/compact.json" \
     -w '%{http_code}' http://localhost/v1/exports/big/compact > "$tmp/compact.status" &
compact=$!

# seen_compacting: the list answered while the compact's request waits.
seen_compacting ()
{
    api GET /v1/exports > "$tmp/list.json"
    kill -0 "$compact" 2>/dev/null &&
        jq -e '.exports[0].operation_state == "compacting"' "$tmp/list.json" >/dev/null
}
wait_for 30 seen_compacting || fail "no list answered during the compact"
api GET /v1/exports/big/status | jq -e '.operation_state == "compacting" and
    .operation_progress.total == 128'
for op in snapshot compact hydrate; do
    api_expect 409 POST "/v1/exports/big/$op" | jq -e '.code == "busy"'
done

wait "$compact"
[ "$(cat "$tmp/compact.status")" = 200 ]
jq -e '.generation == 1 and (.snapshot_id | test("^[0-9a-f]{32}$"))' "$tmp/compact.json"
api GET /v1/exports/big/status | jq -e '.operation_state == "idle" and
    .dirty_chunks == 0 and .snapshot_generation == 1'
echo OK
