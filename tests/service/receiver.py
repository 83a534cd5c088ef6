"""A real local HTTP receiver for webhook tests: records every request, and fails or holds them when told."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, parsed
    status: int  # what the receiver answered


class Receiver:
    """``http://127.0.0.1:<port>``: answers 200, except ``fail_first[path_prefix] = n`` (the first n requests
    under that prefix get a 500), ``always_fail`` prefixes (500, the body echoing the path) and ``hold``
    (requests wait until it is set). ``requests(prefix)`` lists what arrived."""

    def __init__(self) -> None:
        self.fail_first: dict[str, int] = {}
        self.always_fail: set[str] = set()
        self.hold = threading.Event()
        self.hold.set()
        self.holding = threading.Event()  # set while a request waits on ``hold``
        self._lock = threading.Lock()
        self._seen: list[Request] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                if not receiver.hold.is_set():
                    receiver.holding.set()
                    receiver.hold.wait(30)
                status = receiver._status(self.path)
                with receiver._lock:
                    receiver._seen.append(Request(self.path, dict(self.headers), body, status))
                payload = (f"refused {self.path}" if status >= 400 else "ok").encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _status(self, path: str) -> int:
        with self._lock:
            if any(path.startswith(p) for p in self.always_fail):
                return 500
            for prefix, left in self.fail_first.items():
                if path.startswith(prefix) and left > 0:
                    self.fail_first[prefix] = left - 1
                    return 500
        return 200

    def requests(self, prefix: str = "/") -> list[Request]:
        with self._lock:
            return [r for r in self._seen if r.path.startswith(prefix)]

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
