"""Test servers on loopback: an HTTP handler class served on a free port of 127.0.0.1, in a thread."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


def serve(handler: type) -> tuple[ThreadingHTTPServer, str]:
    """Serve `handler` (a quiet `BaseHTTPRequestHandler`) on 127.0.0.1 at a free port; (server, its URL)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
