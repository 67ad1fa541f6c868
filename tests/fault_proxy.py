#!/usr/bin/python3
# fault_proxy.py PORT_FILE SEEN_FILE UPSTREAM_PORT STATUS COUNT
#                [LOSE_SUFFIX LOSE_FILE DOWN_FILE]
#
# An S3 proxy on 127.0.0.1 that injects faults in front of a real store
# (tests/s3-server.sh).  It writes its port to PORT_FILE and the number of
# requests seen to SEEN_FILE (connections to SEEN_FILE.connections).
#   - The first COUNT requests are answered STATUS (an S3 error document)
#     without reaching the store; STATUS "hang" never answers.  STATUS
#     "corrupt" instead forwards everything and flips the first byte of
#     the bodies of the first COUNT ranged GETs (a body damaged on the
#     way, which the client must catch by its checksum); "corrupt-doc"
#     does it to the first COUNT GETs of whole objects.
#   - Like AWS (unlike Swift), a body whose SHA-256 is not the signed
#     x-amz-content-sha256 gets 400 XAmzContentSHA256Mismatch.
#   - When LOSE_FILE exists, the next conditional PUT (If-Match) of a key
#     ending in LOSE_SUFFIX reaches the store, but its reply is lost: the
#     client gets a 503 and LOSE_FILE is removed.  If LOSE_FILE said
#     "then-down", DOWN_FILE is created at that moment.
#   - While DOWN_FILE exists, every request gets a 503 without reaching
#     the store.
# Everything else is forwarded as is, signed headers included.
import hashlib
import http.client
import http.server
import os
import sys
import threading
import time

port_file, seen_file, upstream, status, count = sys.argv[1:6]
lose_suffix, lose_file, down_file = (sys.argv[6:9] + [None] * 3)[:3]
count, upstream = int(count), int(upstream)
codes = {'400': 'InvalidRequest', '429': 'SlowDown', '503': 'SlowDown',
         'hash': 'XAmzContentSHA256Mismatch'}
lock, seen, connections = threading.Lock(), [0], [0]
corrupted = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with lock:
            connections[0] += 1
            with open(seen_file + '.connections', 'w') as f:
                f.write('%d\n' % connections[0])

    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def error(self, fault):
        err = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s'
               '</Code><Message>injected</Message></Error>'
               % codes[fault]).encode()
        self.answer(400 if fault == 'hash' else int(fault),
                    [('Content-Length', str(len(err)))], err)

    def forward(self, body):
        # The Host header the client signed goes along; the reply comes
        # back whole, with its length (HEAD's as sent).
        conn = http.client.HTTPConnection('127.0.0.1', upstream)
        conn.request(self.command, self.path, body, dict(self.headers))
        resp = conn.getresponse()
        data = resp.read()
        hop = ('connection', 'transfer-encoding', 'content-length')
        headers = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in hop]
        length = resp.getheader('Content-Length', '0') \
            if self.command == 'HEAD' else str(len(data))
        return resp.status, headers + [('Content-Length', length)], data

    def lose_this_reply(self):
        if (lose_suffix is None or self.command != 'PUT' or
                'If-Match' not in self.headers or
                not self.path.split('?')[0].endswith(lose_suffix)):
            return False
        with lock:
            try:
                with open(lose_file) as f:
                    then_down = f.read().strip() == 'then-down'
                os.unlink(lose_file)
            except FileNotFoundError:
                return False
        if then_down:
            open(down_file, 'w').close()
        return True

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with lock:
            seen[0] += 1
            n = seen[0]
            with open(seen_file, 'w') as f:
                f.write("%d\n" % n)
        fault = status if n <= count and \
            not status.startswith('corrupt') else None
        if self.headers.get('x-amz-content-sha256') != \
                hashlib.sha256(body).hexdigest():
            fault = 'hash'
        if fault == 'hang':
            time.sleep(60)
        elif fault:
            self.error(fault)
        elif down_file and os.path.exists(down_file):
            self.error('503')
        elif self.lose_this_reply():
            self.forward(body)
            self.error('503')
        else:
            code, headers, data = self.forward(body)
            if self.corrupt_this_reply(code):
                data = bytes([data[0] ^ 0xff]) + data[1:]
            self.answer(code, headers, data)

    def corrupt_this_reply(self, code):
        ranged = 'Range' in self.headers
        if self.command != 'GET' or code // 100 != 2 or \
                status != ('corrupt' if ranged else 'corrupt-doc'):
            return False
        with lock:
            corrupted[0] += 1
            return corrupted[0] <= count

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
server.daemon_threads = True
with open(port_file + '.new', 'w') as f:
    f.write('%d\n' % server.server_address[1])
os.rename(port_file + '.new', port_file)
server.serve_forever()
