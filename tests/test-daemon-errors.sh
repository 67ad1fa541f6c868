#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# Every error of the admin API has a fitting status and, except libevent's
# own 413, the body {"error":...,"code":...}; none changes anything.
# 404: unknown endpoint or export.  405: wrong method, with Allow.  413: a
# body over 64 KiB, refused from its Content-Length.  400: malformed JSON,
# a body that is not an object, unknown or missing fields, and invalid ids
# in the path or the body (lazyvold checks them before the plugin sees
# them), bad sizes (the plugin checks those).  409: create or open of a
# loaded export, close and reset while a client is connected, delete of
# the current snapshot.  502: corrupt remote data.  The admin socket is
# mode 0600.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq stat qemu-io /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
start_lazyvold "$tmp"

[ "$(stat -c %a "$admin")" = 600 ]

# expect STATUS CODE METHOD PATH [JSON]
expect ()
{
    local status=$1 code=$2
    shift 2
    api_expect "$status" "$@" | jq -e --arg c "$code" \
        '.code == $c and (.error | type == "string" and length > 0) and
         (has("ok") | not)' >/dev/null
}

expect 404 not_found GET /v1/nosuch
expect 404 not_found GET /v1/exports/
expect 404 not_found GET /v1/exports/vm01/nosuch
expect 404 not_found GET /v1/exports/vm01/snapshots/x/y
expect 404 not_found GET /v1/exports/nosuch/status
expect 404 not_found POST /v1/exports/open '{"export_id":"nosuch"}'
expect 404 not_found POST /v1/exports/nosuch/snapshot

expect 405 method_not_allowed POST /v1/exports
expect 405 method_not_allowed GET /v1/exports/create
expect 405 method_not_allowed PUT /v1/health
expect 405 method_not_allowed GET /v1/exports/vm01/snapshot
curl -sS -i --unix-socket "$admin" -X DELETE http://localhost/v1/exports/vm01/status |
    tr -d '\r' | matches -x 'Allow: GET'
curl -sS -i --unix-socket "$admin" -X PATCH http://localhost/v1/exports/vm01/close |
    tr -d '\r' | matches -x 'Allow: POST'

expect 400 bad_request POST /v1/exports/create 'not json'
expect 400 bad_request POST /v1/exports/create '[1,2]'
expect 400 bad_request POST /v1/exports/create '"vm01"'
expect 400 bad_request POST /v1/exports/create '{"export_id":"v","size":1048576} x'
expect 400 bad_request POST /v1/exports/create '{"export_id":"v","size":'
expect 400 bad_request POST /v1/exports/create ''
expect 400 bad_request POST /v1/exports/create '{"size":1048576}'
expect 400 bad_request POST /v1/exports/create '{"export_id":"v","size":1048576,"colour":"red"}'
expect 400 bad_request POST /v1/exports/create '{"export_id":7,"size":1048576}'
expect 400 bad_request POST /v1/exports/create '{"export_id":"../etc","size":1048576}'
expect 400 bad_request POST /v1/exports/create '{"export_id":"a/b","size":1048576}'
expect 400 bad_request POST /v1/exports/create '{"export_id":".hidden","size":1048576}'
expect 400 bad_request POST /v1/exports/create "{\"export_id\":\"$(printf 'x%.0s' $(seq 129))\",\"size\":1048576}"
expect 400 bad_request POST /v1/exports/create '{"export_id":"v","size":"1G"}'
expect 400 bad_request POST /v1/exports/create '{"export_id":"v","size":-1}'
expect 400 bad_request POST /v1/exports/create '{"export_id":"v","size":1048576,"chunk_size":1000}'
expect 400 bad_request POST /v1/exports/open '{"export_id":"v@nothex"}'
expect 400 bad_request POST /v1/exports/clone '{"export_id":"c","source_export_id":"v","source_snapshot_id":"../../x"}'
expect 400 bad_request POST /v1/exports/clone '{"export_id":"c","source_export_id":"v/w"}'
expect 400 bad_request GET '/v1/exports/..%2Fetc/status'
expect 400 bad_request GET /v1/exports/.hidden/status
expect 400 bad_request GET "/v1/exports/$(printf 'x%.0s' $(seq 200))/status"
expect 400 bad_request POST /v1/exports/v@0123/snapshot
# A snapshot view is read-only: what would change it is refused as such.
view=v@0195d4f7a7c84b8d9a4cf59d1c4c7c9e
for op in snapshot compact cache/reset; do
    expect 409 read_only POST "/v1/exports/$view/$op"
done
expect 409 read_only POST "/v1/exports/$view/fork" '{"new_export_id":"f"}'
expect 400 bad_request DELETE /v1/exports/v/snapshots/NOTHEX
expect 400 bad_request DELETE /v1/exports/v/snapshots/0195d4f7a7c84b8d9a4cf59d1c4c7c9

# 413 before the body is read; the daemon goes on.
head -c 100000 /dev/zero | tr '\0' 'x' > "$tmp/big"
[ "$(curl -sS --unix-socket "$admin" -o /dev/null -w '%{http_code}' \
      -H 'Content-Type: application/json' --data-binary @"$tmp/big" \
      http://localhost/v1/exports/create)" = 413 ]

# Nothing was created by any of that.
api GET /v1/exports | jq -e '.exports == []'
[ ! -e "$tmp/bucket/etc" ] && [ ! -e "$tmp/cache/v" ]

# 409s.
api_expect 201 POST /v1/exports/create '{"export_id":"v","size":4194304,"chunk_size":1048576}' >/dev/null
expect 409 already_exists POST /v1/exports/create '{"export_id":"v","size":4194304}'
expect 409 already_exists POST /v1/exports/open '{"export_id":"v"}'
qemu-io -f raw -c 'write -P 1 0 4k' "$(uri v)" >/dev/null
sid=$(api POST /v1/exports/v/snapshot | jq -r .snapshot_id)
expect 409 busy DELETE "/v1/exports/v/snapshots/$sid"

# A client holds a connection: close and reset are refused.
/usr/bin/python3 - "$(uri v)" "$tmp" <<'PY' &
import nbd, os, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
open(sys.argv[2] + "/connected", "w").close()
deadline = time.time() + 120
while not os.path.exists(sys.argv[2] + "/release") and time.time() < deadline:
    time.sleep(0.05)
h.shutdown()
PY
client=$!
wait_for 30 test -e "$tmp/connected"
expect 409 busy POST /v1/exports/v/close
expect 409 busy POST /v1/exports/v/cache/reset
api GET /v1/exports/v/status | jq -e '.connections == 1'
touch "$tmp/release"
wait "$client"
wait_for 30 sh -c "curl -sS --unix-socket '$admin' http://localhost/v1/exports/v/status | jq -e '.connections == 0'"

# 502: corrupt remote data.
api POST /v1/exports/v/close | jq -e '. == {}'
printf '{"not": "a volume"' > "$tmp/junk"
store_tool put exports/v/volume.json "$tmp/junk" >/dev/null
expect 502 bad_remote_data POST /v1/exports/open '{"export_id":"v"}'
api GET /v1/exports | jq -e '.exports == []'
echo OK
