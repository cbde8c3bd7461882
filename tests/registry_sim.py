"""A schema registry for the tests, over a real socket: the part of Confluent's REST API that
confluent-kafka's `SchemaRegistryClient` uses to register a schema, fetch one by id and list
the subjects (no Confluent registry or Karapace is installable here). It can fail as a real
one does: answer an error to everything (`fail()`: 503 unless told), answer a web page that
is no registry's (`garble()`), hold every request without answering (`stall()`), and serve
again (`serve()`)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REGISTER = re.compile(r"^/subjects/([^/?]+)/versions(?:\?.*)?$")
_BY_ID = re.compile(r"^/schemas/ids/(\d+)(?:\?.*)?$")


class RegistrySim:
    """Schemas by id, registered per subject; `mode` is "serve", "fail", "garble" or "stall"."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}  # id -> {"schema": ..., "schemaType"?}
        self.subjects: dict[str, list[int]] = {}  # subject -> its versions' schema ids
        self.mode = "serve"
        self.failure = (503, 50301)  # what `fail` answers: HTTP status, registry error code
        self.message = "failing (sim)"  # and its message
        self.not_found_code = 40403  # the error code of an unknown id (Confluent's; some say 404)
        self.garbage: Any = "<html>a login page</html>"  # what `garble` answers, with a 200
        self.requests = 0  # every request, answered or not
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # (quiet test output)
                pass

            def do_GET(self) -> None:
                sim._handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sim._handle(self, self.rfile.read(length))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self) -> None:
        self.mode = "serve"
        self._released.set()

    def fail(self, status: int = 503, code: int = 50301, message: str = "failing (sim)") -> None:
        self.failure = (status, code)
        self.message = message
        self.mode = "fail"
        self._released.set()

    def garble(self, answer: Any = "<html>a login page</html>") -> None:
        self.garbage = answer
        self.mode = "garble"
        self._released.set()

    def stall(self) -> None:
        self._released.clear()
        self.mode = "stall"

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes | None) -> None:
        with self._lock:
            self.requests += 1
        if self.mode == "stall":
            self._released.wait(120)  # (held until serve() or fail(); then answered)
        if self.mode == "fail":
            status, code = self.failure
            self._answer(request, status, {"error_code": code, "message": self.message})
            return
        if self.mode == "garble":
            html = isinstance(self.garbage, str)
            self._answer(request, 200, self.garbage, "text/html" if html else "application/json")
            return
        path = request.path
        if body is not None and (found := _REGISTER.match(path)):
            schema = json.loads(body)
            entry = {"schema": schema["schema"]}
            if schema.get("schemaType", "AVRO") != "AVRO":
                entry["schemaType"] = schema["schemaType"]
            with self._lock:
                known = [k for k, v in self.schemas.items() if v == entry]
                schema_id = known[0] if known else len(self.schemas) + 1
                self.schemas[schema_id] = entry
                versions = self.subjects.setdefault(found.group(1), [])
                if schema_id not in versions:
                    versions.append(schema_id)
            self._answer(request, 200, {"id": schema_id})
        elif body is None and path.split("?")[0] == "/subjects":
            self._answer(request, 200, sorted(self.subjects))
        elif body is None and (found := _BY_ID.match(path)):
            entry_or_none = self.schemas.get(int(found.group(1)))
            if entry_or_none is None:
                body = {"error_code": self.not_found_code, "message": "Schema not found"}
                self._answer(request, 404, body)
            else:
                self._answer(request, 200, entry_or_none)
        else:
            self._answer(request, 404, {"error_code": 404, "message": f"not simulated: {path}"})

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        content_type: str = "application/vnd.schemaregistry.v1+json",
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:  # the client gave up (its timeout)
            pass

    def start(self) -> RegistrySim:
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def registry_sim() -> Iterator[RegistrySim]:
    sim = RegistrySim().start()
    try:
        yield sim
    finally:
        sim.close()
