"""One way the local stand-ins and the gateway serve HTTP: a threaded werkzeug server on
127.0.0.1 in a daemon thread, quiet about each request (the functions log their own)."""

from __future__ import annotations

import threading
import time

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def in_background(app, port: int, name: str, handler: type[WSGIRequestHandler] = QuietHandler) -> BaseWSGIServer:
    """Serves `app` on 127.0.0.1:`port` (0: a free one) until `server.shutdown()`."""
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=handler)
    # `shutdown()` must not wait for the requests still running (socketserver joins every
    # handler thread on close by default): under load one may wait out a contention
    # queue, and a stopping stack would then outlast its caller's patience.
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return server


def still_running(threads: list[threading.Thread], timeout_seconds: float) -> list[threading.Thread]:
    """Waits for `threads` (a stand-in's deliveries in flight) until one deadline for all,
    and answers those still running, to be waited for again (never forgotten)."""
    until = time.monotonic() + timeout_seconds
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()))
    return [thread for thread in threads if thread.is_alive()]
