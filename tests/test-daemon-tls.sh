#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
# NBD over TLS: lazyvold passes --tls, --tls-psk, --tls-certificates and
# --tls-verify-peer to nbdkit.  With a PSK file (psktool) and TLS
# required, a client holding the key writes an export and reads the same
# bytes back, over TCP (nbds://) and over a Unix socket (nbds+unix://),
# while a plain NBD client and a client with another key are refused.
# With X.509 certificates made here (a CA, a server certificate for
# localhost and 127.0.0.1, a client certificate), --tls=on admits plain
# clients too, and --tls-verify-peer admits only a client showing a
# certificate the CA signed.  A PSK file or server key that others may
# read is warned about; the ready line says the TLS mode.  (The usage
# errors of the TLS options are in test-daemon-startup.sh.)
. "$srcdir/functions.sh"
requires "$LAZYVOLD" curl jq psktool certtool nbdcopy nbdinfo cmp dd
tmp=$(make_tmpdir)
start_store "$tmp"
dd if=/dev/urandom of="$tmp/data.img" bs=1M count=4 status=none

# round_trip EXPORT URI: create EXPORT, write data.img to it through URI,
# read it back through URI and compare.
round_trip ()
{
    api POST /v1/exports/create "{\"export_id\":\"$1\",\"size\":4194304,\"chunk_size\":1048576}" >/dev/null
    nbdcopy "$tmp/data.img" "$2"
    nbdcopy "$2" "$tmp/out.img"
    cmp "$tmp/data.img" "$tmp/out.img"
    rm "$tmp/out.img"
    nbdinfo "$2" | matches -x 'protocol: .* with TLS, .*'
}

# refused URI: an NBD client gets nothing through URI (why goes to the
# log).
refused ()
{
    if nbdinfo "$1"; then
        fail "a client was admitted through $1"
    fi
}

# ready_line DIR: the "ready" line of the lazyvold logging in DIR.
ready_line ()
{
    grep 'ready: NBD on' "$1/lazyvold.log"
}

# PSK over TCP: a PSK file alone means --tls=require.
psktool -u alice -p "$tmp/keys.psk" >/dev/null
psktool -u alice -p "$tmp/other.psk" >/dev/null
chmod 0600 "$tmp/keys.psk"
port=$(free_port)
start_lazyvold "$tmp/psk" --listen "127.0.0.1:$port" --export-root psk \
    --tls-psk "$tmp/keys.psk"
ready_line "$tmp/psk" | matches -F "NBD on 127.0.0.1:$port (TLS required),"
if matches 'secret key' "$tmp/psk/lazyvold.log"; then
    fail "a PSK file of mode 0600 was warned about"
fi
round_trip v "nbds://alice@127.0.0.1:$port/v?tls-psk-file=$tmp/keys.psk"
refused "nbd://127.0.0.1:$port/v"
refused "nbds://alice@127.0.0.1:$port/v?tls-psk-file=$tmp/other.psk"
stop_lazyvold

# PSK over a Unix socket, with a key file the group may read.
chmod 0640 "$tmp/keys.psk"
start_lazyvold "$tmp/unix" --export-root unix --tls=require \
    --tls-psk "$tmp/keys.psk"
matches -F -- "--tls-psk: $tmp/keys.psk is mode 0640" "$tmp/unix/lazyvold.log"
round_trip u "nbds+unix://alice@/u?socket=$nbd&tls-psk-file=$tmp/keys.psk"
refused "nbd+unix:///u?socket=$nbd"
stop_lazyvold

# X.509: a CA, a server certificate, a client certificate.  The client
# directories hold what libnbd reads: ca-cert.pem, and the client's
# certificate and key, or none for a client without a certificate.
pki=$tmp/pki
mkdir -p "$pki/server" "$pki/client" "$pki/anonymous"
(
    cd "$pki"
    certtool --generate-privkey --outfile ca-key.pem 2>/dev/null
    printf '%s\n' 'cn = lazyvol test CA' ca cert_signing_key > ca.info
    certtool --generate-self-signed --load-privkey ca-key.pem \
        --template ca.info --outfile ca-cert.pem 2>/dev/null
    # sign NAME DIR SIGNING-ROLE TEMPLATE-LINES...: DIR/NAME-key.pem and
    # DIR/NAME-cert.pem, signed by the CA.
    sign ()
    {
        local name=$1 dir=$2
        shift 2
        certtool --generate-privkey --outfile "$dir/$name-key.pem" 2>/dev/null
        printf '%s\n' "$@" encryption_key signing_key > "$name.info"
        certtool --generate-certificate --load-ca-certificate ca-cert.pem \
            --load-ca-privkey ca-key.pem --load-privkey "$dir/$name-key.pem" \
            --template "$name.info" --outfile "$dir/$name-cert.pem" 2>/dev/null
    }
    sign server server 'cn = localhost' 'dns_name = localhost' \
        'ip_address = 127.0.0.1' tls_www_server
    sign client client 'cn = alice' tls_www_client
    cp ca-cert.pem server/
    cp ca-cert.pem client/
    cp ca-cert.pem anonymous/
)

# --tls=on: TLS for clients that ask, plain NBD for the others.  The
# server's key is readable by all: a warning.
chmod 0644 "$pki/server/server-key.pem"
port=$(free_port)
start_lazyvold "$tmp/on" --listen "127.0.0.1:$port" --export-root on \
    --tls=on --tls-certificates "$pki/server"
ready_line "$tmp/on" | matches -F "NBD on 127.0.0.1:$port (TLS optional),"
matches -F -- "--tls-certificates: $pki/server/server-key.pem is mode 0644" \
    "$tmp/on/lazyvold.log"
round_trip o "nbds://localhost:$port/o?tls-certificates=$pki/anonymous"
nbdinfo "nbd://127.0.0.1:$port/o" | matches -x 'protocol: .* without TLS, .*'
stop_lazyvold

# --tls-verify-peer: only a client with a certificate the CA signed.
chmod 0600 "$pki/server/server-key.pem"
port=$(free_port)
start_lazyvold "$tmp/verify" --listen "127.0.0.1:$port" --export-root verify \
    --tls-certificates "$pki/server" --tls-verify-peer
if matches 'secret key' "$tmp/verify/lazyvold.log"; then
    fail "a server key of mode 0600 was warned about"
fi
ready_line "$tmp/verify" |
    matches -F "(TLS required, client certificates verified),"
round_trip c "nbds://127.0.0.1:$port/c?tls-certificates=$pki/client"
refused "nbds://127.0.0.1:$port/c?tls-certificates=$pki/anonymous"
refused "nbd://127.0.0.1:$port/c"
stop_lazyvold
echo OK
