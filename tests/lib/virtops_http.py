# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small HTTP server on loopback for tests of downloads: serves one directory and counts the requests.

    with ImageServer(directory) as server:
        server.url('disk.qcow2')        # http://127.0.0.1:<port>/disk.qcow2
        server.count('disk.qcow2')      # GET requests for that path so far
        server.headers('disk.qcow2')    # the headers of the last of them
        server.stall('slow.img', 5)     # that path sends its headers and 64 KiB, then nothing for 5 s

It listens on 127.0.0.1 only (DESIGN.md: servers a test starts listen on loopback). Python's
http.server sends no Content-Encoding, so a .gz arrives as the bytes on disk.
"""

from __future__ import annotations

import collections
import functools
import http.server
import ssl
import threading
import time


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, server_state=None, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def do_GET(self):
        name = self.path.lstrip('/').split('?', 1)[0]
        with self.state['lock']:
            self.state['counts'][name] += 1
            self.state['headers'][name] = dict(self.headers.items())
        stall = self.state['stalls'].get(name)
        if stall:
            self.send_response(200)
            self.send_header('Content-Length', '1048576')
            self.end_headers()
            self.wfile.write(bytes(65536))
            self.wfile.flush()
            time.sleep(stall)
            return
        super().do_GET()

    def log_message(self, *_args):
        pass


class ImageServer(object):
    """tls=(certfile, keyfile) serves HTTPS instead."""

    def __init__(self, directory, tls=None):
        self.state = {'counts': collections.Counter(), 'headers': {}, 'stalls': {}, 'lock': threading.Lock()}
        handler = functools.partial(_Handler, directory=str(directory), server_state=self.state)
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.httpd.daemon_threads = True
        self.scheme = 'https' if tls else 'http'
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, name):
        return '%s://127.0.0.1:%d/%s' % (self.scheme, self.httpd.server_address[1], name)

    def count(self, name):
        with self.state['lock']:
            return self.state['counts'][name]

    def headers(self, name):
        with self.state['lock']:
            return self.state['headers'].get(name)

    def stall(self, name, seconds):
        self.state['stalls'][name] = seconds
