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
If-None-Match: * and If-Match on PUT as AWS S3 does.  Unlike AWS's, its
checks are not atomic against a concurrent PUT of the same key, and
If-Match compares with the ETag of simple (not multipart) objects.
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
    s3api's header check; Swift itself answers 412 to "If-None-Match: *"
    when the object exists, and this filter answers 412 to If-Match unless
    a HEAD of the object shows that ETag.
    """
    from swift.common.middleware.s3api.s3request import S3Request
    from swift.common.swob import HTTPPreconditionFailed
    from swift.common.wsgi import make_pre_authed_request
    validate = S3Request._validate_headers
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
        def check_if_match(environ, start_response):
            want = environ.pop('HTTP_IF_MATCH', None)
            if environ['REQUEST_METHOD'] == 'PUT' and want is not None:
                head = make_pre_authed_request(
                    environ, 'HEAD', quote(environ['PATH_INFO']),
                    swift_source='lazyvol-test').get_response(app)
                etag = head.headers.get('Etag', '').strip('"')
                if head.status_int // 100 != 2 or etag != want.strip('"'):
                    return HTTPPreconditionFailed()(environ, start_response)
            return app(environ, start_response)
        return check_if_match
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
