#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# GET /v1/metrics is valid Prometheus text (version 0.0.4): each family
# has one HELP and one TYPE line before its samples, every other line is
# NAME[{LABELS}] VALUE with valid names and escaped label values, and no
# family appears twice.  The values are the plugin's counters — fetches,
# hits, misses, resident and dirty chunks, cache bytes and publishes per
# export, the cache budget, store traffic and fetch latency — and
# lazyvold's own (nbdkit up, restarts).
# --metrics-exports bounds the exports given series of their own.
# A look-up of a missing object is an answer, not a store error: the
# failure counters (by operation and reason) stay empty.
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq qemu-io /usr/bin/python3
tmp=$(make_tmpdir)
start_store "$tmp"
# No readahead, so that exactly the chunks read are fetched.
start_lazyvold "$tmp" --param readahead=0

api POST /v1/exports/create '{"export_id":"e1","size":8388608,"chunk_size":1048576}' >/dev/null
api POST /v1/exports/create '{"export_id":"e2","size":8388608}' >/dev/null
qemu-io -f raw -c 'write -P 1 0 2M' -c 'write -P 2 4M 4k' "$(uri e1)" >/dev/null
api POST /v1/exports/e1/snapshot >/dev/null
wait_for 30 api_no_clients e1
api POST /v1/exports/e1/cache/reset >/dev/null
# One chunk fetched, then read again from the cache; one chunk dirty.
qemu-io -f raw -c 'read 0 4k' -c 'read 0 1M' -c 'write -P 3 6M 4k' "$(uri e1)" >/dev/null
wait_for 30 api_no_clients e1
api_expect 404 POST /v1/exports/open '{"export_id":"missing"}' >/dev/null

[ "$(curl -sS --unix-socket "$admin" -o "$tmp/metrics" -w '%{content_type}' \
      http://localhost/v1/metrics)" = 'text/plain; version=0.0.4; charset=utf-8' ]
cat "$tmp/metrics"

/usr/bin/python3 - "$tmp/metrics" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n")
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r"^(%s)(\{%s(?:,%s)*\})? (-?[0-9]+(?:\.[0-9]+)?)$"
                    % (name, label, label))
types, helps, seen, values = {}, set(), [], {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        fam = line.split(" ")[2]
        assert fam not in helps, "HELP twice: " + line
        helps.add(fam)
    elif line.startswith("# TYPE "):
        _, _, fam, typ = line.split(" ")
        assert re.fullmatch(name, fam) and fam not in types, line
        assert typ in ("counter", "gauge", "summary", "histogram"), line
        types[fam] = typ
        seen.append(fam)
    else:
        m = sample.match(line)
        assert m, "bad sample line: %r" % line
        fam = m.group(1)
        if types.get(seen[-1]) in ("summary", "histogram"):
            parts = ("_sum", "_count") + (("_bucket",)
                     if types[seen[-1]] == "histogram" else ())
            assert fam in [seen[-1] + p for p in parts], line
        else:
            assert fam == seen[-1], "sample outside its family: " + line
        values[fam + (m.group(2) or "")] = float(m.group(3))
assert helps == set(types), "HELP and TYPE differ"

def v(key): return values[key]
e1 = '{export="e1"}'
assert v("lazyvold_nbdkit_up") == 1
assert v("lazyvold_nbdkit_restarts_total") == 0
assert v("lazyvol_export_fills_total" + e1) == 1
assert v("lazyvol_export_fill_bytes_total" + e1) == 1048576
assert v("lazyvol_export_fill_errors_total" + e1) == 0
assert v("lazyvol_export_cache_misses_total" + e1) >= 1
assert v("lazyvol_export_cache_hits_total" + e1) >= 1
assert v("lazyvol_export_resident_chunks" + e1) == 2
assert v("lazyvol_export_dirty_chunks" + e1) == 1
assert v("lazyvol_export_connections" + e1) == 0
assert v("lazyvol_export_publishes_total" + e1) == 1
assert v("lazyvol_export_publish_seconds_total" + e1) > 0
assert v("lazyvol_export_last_publish_seconds" + e1) > 0
assert v('lazyvol_export_publishes_total{export="e2"}') == 0
# No cache budget: the bytes are counted, nothing is evicted or refused.
assert v("lazyvol_cache_budget_bytes") == 0
assert v("lazyvol_cache_used_bytes") == 2 * 1048576
assert v("lazyvol_cache_dirty_bytes") == 1048576
assert v("lazyvol_cache_evictions_total") == 0
assert v("lazyvol_export_cache_used_bytes" + e1) == 2 * 1048576
assert v("lazyvol_export_evictions_total" + e1) == 0
assert v("lazyvol_export_bypass_reads_total" + e1) == 0
assert v("lazyvol_export_refused_writes_total" + e1) == 0
assert v("lazyvol_store_requests_total") > 0
assert "lazyvol_store_errors_total" in types
assert not [k for k in values if k.startswith("lazyvol_store_errors_total")]
assert v("lazyvol_store_sent_bytes_total") >= 2 * 1048576
assert v("lazyvol_store_received_bytes_total") >= 1048576
assert v("lazyvol_store_fetch_seconds_count") >= 1
assert v("lazyvol_store_fetch_seconds_sum") > 0
# The fetch latency histogram: bounds rising to +Inf, counts cumulative,
# the +Inf bucket the count.
assert types["lazyvol_store_fetch_seconds"] == "histogram"
b = [(k[len('lazyvol_store_fetch_seconds_bucket{le="'):-2], n)
     for k, n in values.items()
     if k.startswith("lazyvol_store_fetch_seconds_bucket")]
assert len(b) == 13 and b[-1][0] == "+Inf", b
bounds = [float(le) for le, _ in b[:-1]]
assert bounds == sorted(bounds) and bounds[0] == 0.001 and bounds[-1] == 10, b
assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), b
assert b[-1][1] == v("lazyvol_store_fetch_seconds_count"), b
assert v("lazyvol_exports") == 2
assert v("lazyvol_metrics_exports_omitted") == 0
PY

# --metrics-exports bounds the per-export series; the others are counted.
stop_lazyvold
start_lazyvold "$tmp/b" --metrics-exports 1
curl -sS --fail --unix-socket "$admin" -o "$tmp/metrics" http://localhost/v1/metrics
[ "$(grep -c '^lazyvol_export_fills_total{' "$tmp/metrics")" = 1 ]
grep -qx 'lazyvol_exports 2' "$tmp/metrics"
grep -qx 'lazyvol_metrics_exports_omitted 1' "$tmp/metrics"
stop_lazyvold
if "$LAZYVOLD" serve --metrics-exports -1 2> "$tmp/err"; then
    fail "--metrics-exports -1 accepted"
fi
matches 'metrics-exports wants a number from 0 to 1000000' "$tmp/err"
echo OK
