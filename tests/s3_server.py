# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The lazyvol Authors.  See COPYING.
"""Run one OpenStack Swift server of lazyvol's test S3 store.

    /usr/bin/python3 s3_server.py DIR SERVER     (account, container,
                                                  object or proxy)

s3-server.sh writes DIR/etc and starts the four servers with this file.
It does what the swift-*-server programs of Debian's swift packages do,
with two differences, so that only the python3-swift library is needed:

* Swift reads its cluster-wide settings from /etc/swift/swift.conf; here
  they come from DIR/etc/swift.conf.
* tempauth keeps its tokens in memcached; the proxy-server.conf of
  s3-server.sh puts the "memory_cache" filter below in its place (one
  proxy process, so one dict is coherent).

"s3-server.sh start DIR cond-put" adds the "conditional_put" filter
below: Swift's s3api (2.30) answers 501 to every conditional PUT, which
is what stock Swift tests; with the filter the store evaluates
If-None-Match: * and If-Match on PUT as AWS S3 does, atomically: every
PUT and DELETE of a key holds that key's lock from its check to its
write, so of two writers that race with the same condition only one
wins.  If-Match compares with the ETag of simple (not multipart)
objects.
"""
import json
import os
import sys
from time import time as now
from urllib.parse import quote


class MemoryCache:
    """The part of swift.common.memcached.MemcacheRing tempauth uses.

    Values are kept as JSON, as memcached keeps them, so no caller can
    change what another one reads.
    """

    def __init__(self):
        self.items = {}

    def get(self, key, raise_on_error=False):
        expires, value = self.items.get(key, (None, 'null'))
        if expires is not None and expires < now():
            del self.items[key]
            return None
        return json.loads(value)

    def set(self, key, value, serialize=True, time=0, min_compress_len=0,
            raise_on_error=False):
        # Memcached's convention: up to 30 days is relative, above absolute.
        ttl = float(time or 0)
        expires = None if ttl <= 0 else ttl if ttl > 30 * 86400 \
            else ttl + now()
        self.items[key] = (expires, json.dumps(value))

    def delete(self, key, server_key=None):
        self.items.pop(key, None)


def memory_cache(global_conf, **local_conf):
    """paste filter factory: put one MemoryCache in every request."""
    cache = MemoryCache()

    def make_filter(app):
        def with_cache(environ, start_response):
            environ['swift.cache'] = cache
            return app(environ, start_response)
        return with_cache
    return make_filter


def conditional_put(global_conf, **local_conf):
    """paste filter factory: conditional PUTs, as AWS S3 has them.

    Goes after tempauth.  Lets If-Match and If-None-Match on PUT past
    s3api's header check, and evaluates them itself with a HEAD of the
    object: 412 to "If-None-Match: *" if it exists, to If-Match unless it
    has that ETag.  The HEAD and the write that follows hold a lock of
    the key (one proxy process, eventlet green threads: one semaphore per
    key), taken by every PUT and DELETE, so the check and the write are
    one step for any other writer of the key.
    """
    from swift.common.middleware.s3api.s3request import S3Request
    from swift.common.swob import HTTPPreconditionFailed
    from swift.common.wsgi import make_pre_authed_request
    from eventlet.semaphore import Semaphore
    validate = S3Request._validate_headers
    locks = {}
    conditions = ('If-Match', 'If-None-Match')

    def validate_but_conditions(self):
        hidden = {}
        if self.method == 'PUT':
            hidden = {h: self.headers.pop(h) for h in conditions
                      if h in self.headers}
        try:
            return validate(self)
        finally:
            self.headers.update(hidden)

    S3Request._validate_headers = validate_but_conditions

    def make_filter(app):
        def failed(environ):
            want = environ.pop('HTTP_IF_MATCH', None)
            absent = environ.get('HTTP_IF_NONE_MATCH', '').strip() == '*'
            if environ['REQUEST_METHOD'] != 'PUT' or \
                    (want is None and not absent):
                return False
            head = make_pre_authed_request(
                environ, 'HEAD', quote(environ['PATH_INFO']),
                swift_source='lazyvol-test').get_response(app)
            exists = head.status_int // 100 == 2
            if absent:
                return exists
            return not exists or \
                head.headers.get('Etag', '').strip('"') != want.strip('"')

        def conditional(environ, start_response):
            if environ['REQUEST_METHOD'] not in ('PUT', 'DELETE'):
                return app(environ, start_response)
            with locks.setdefault(environ['PATH_INFO'], Semaphore()):
                if failed(environ):
                    return HTTPPreconditionFailed()(environ, start_response)
                # The whole write happens under the lock.
                return list(app(environ, start_response))
        return conditional
    return make_filter


def main():
    directory, server = sys.argv[1], sys.argv[2]
    import swift.common.utils
    from swift.common.wsgi import run_wsgi
    swift.common.utils.SWIFT_CONF_FILE = \
        os.path.join(directory, 'etc', 'swift.conf')
    options = {'verbose': True}
    if server == 'object':
        from swift.obj import server as object_server
        options['global_conf_callback'] = object_server.global_conf_callback
    conf = os.path.join(directory, 'etc', server + '-server.conf')
    sys.exit(run_wsgi(conf, server + '-server', **options))


if __name__ == '__main__':
    main()
