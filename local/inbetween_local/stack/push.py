"""Provider push on the local stack: the function URL served on 127.0.0.1, and the emulator sending to it.

With ``StackOptions(push=True)`` (``inbetween local up --push``) the template's ``PushEnabled`` is true,
so ``ProviderEventsFunction`` and ``PushSecret`` exist; then:

* ``FunctionUrlServer`` stands in for the Lambda function URL: a small HTTP server on 127.0.0.1 that turns
  each request into a function-URL event (payload format 2.0), invokes the handler in-process, and turns
  its answer back into an HTTP response (a handler that raises answers 502, as Lambda does).
* The emulator's ``EventSender`` posts every task-finished event to that URL with the push secret in the
  ``x-inbetween-token`` header, with the delivery faults of ``StackOptions.push_faults`` (a
  ``PushConfig`` whose url and headers the stack fills in).
* The template output ``ProviderEventsUrl`` resolves to the local URL.
* ``FunctionUrlServer.observe`` registers a callback that sees every exchange (request body, answer's
  status and body; never the headers, which carry the secret): how a test reads what the function did
  with each event.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .runtime import FunctionCrashed, LocalFunction

FUNCTION = "ProviderEventsFunction"
URL_RESOURCE = "ProviderEventsFunctionUrl"  # what SAM's FunctionUrlConfig generates
MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
TOKEN_HEADER = "x-inbetween-token"  # noqa: S105 - the name of the header, not its value

# push-on clocks for the local provider (tasks end within seconds; a first render takes up to ~10 s): an
# event is overdue 5 s after the expected 10 s of generation, then overdue tasks are checked every 5 s
PUSH_TIMINGS = {
    "EXPECTED_GENERATION_SECONDS": "10",
    "PUSH_GRACE_SECONDS": "5",
    "PUSH_RECHECK_SECONDS": "5",
}
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def with_push(options: Any) -> Any:
    """``options`` with the template's PushEnabled on and the local push clocks (explicit ones win)."""
    return dataclasses.replace(
        options,
        parameters={**options.parameters, "PushEnabled": "true"},
        timings={**PUSH_TIMINGS, **options.timings},
    )


def function_url_event(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A Lambda function URL request event (payload format 2.0)."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    as_text = not body or content_type.startswith(_TEXT_TYPES)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not as_text,
    }
    if parts.query:
        event["queryStringParameters"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if body:
        event["body"] = body.decode("utf-8", "replace") if as_text else base64.b64encode(body).decode()
    return event


@dataclass(frozen=True)
class Exchange:
    """One request to the function URL and its answer (no headers: they carry the push secret)."""

    method: str
    path: str
    body: bytes
    status: int
    answer: bytes


class FunctionUrlServer:
    """Serves one in-process function as its function URL would, on 127.0.0.1."""

    def __init__(self, function: LocalFunction, *, port: int = 0):
        self.function = function
        self.requests = 0
        self._observers: list[Callable[[Exchange], None]] = []
        handler = type("BoundFunctionUrlHandler", (_Handler,), {"server_ref": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="function-url", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> FunctionUrlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def observe(self, observer: Callable[[Exchange], None]) -> None:
        """Call ``observer`` with every exchange from now on (before its answer is sent)."""
        self._observers.append(observer)

    def invoke(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict, bytes]:
        self.requests += 1
        status, out_headers, data = self._invoke(method, target, headers, body)
        exchange = Exchange(method, target, body, status, data)
        for observer in list(self._observers):
            observer(exchange)
        return status, out_headers, data

    def _invoke(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict, bytes]:
        try:
            result = self.function.invoke(function_url_event(method, target, headers, body))
        except (Exception, FunctionCrashed):  # noqa: BLE001 - as Lambda: an unhandled error or a crash is a 502
            return 502, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
        if not isinstance(result, dict) or "statusCode" not in result:
            # Lambda's shortcut: any other JSON answer is a 200 with that JSON as the body
            return 200, {"content-type": "application/json"}, json.dumps(result).encode()
        out = result.get("body") or ""
        data = base64.b64decode(out) if result.get("isBase64Encoded") else str(out).encode()
        return int(result["statusCode"]), dict(result.get("headers") or {}), data


class _Handler(BaseHTTPRequestHandler):
    server_ref: FunctionUrlServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._answer(413, {"content-type": "application/json"}, b'{"message":"Request Too Long"}')
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        status, out_headers, data = self.server_ref.invoke(self.command, self.path, headers, body)
        self._answer(status, out_headers, data)

    def _answer(self, status: int, headers: dict, data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle


class LocalPush:
    """The function URL server and the emulator's event sender of one local stack."""

    def __init__(self, stack: Any):
        from inbetween_local.emulator import EventSender, PushConfig

        function = stack.functions.get(FUNCTION)
        if function is None:
            raise RuntimeError(f"{FUNCTION} is not in the template with PushEnabled=true")
        self.server = FunctionUrlServer(function).start()
        # Outputs (ProviderEventsUrl) name the URL resource SAM would generate: answer it locally
        stack._provisioner.physical[URL_RESOURCE] = {"Ref": self.server.url, "FunctionUrl": self.server.url}
        self.secret = stack.client("secretsmanager").get_secret_value(
            SecretId=stack.resolve({"Ref": "PushSecret"})
        )["SecretString"]
        base = stack.options.push_faults or PushConfig(url=self.server.url)
        config = dataclasses.replace(
            base,
            url=self.server.url,
            headers={**base.headers, TOKEN_HEADER: self.secret},
            region=stack.template.parameter("ProviderRegion"),
        )
        self.sender = EventSender(config).attach(stack.emulator).start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.sender.stop()
        self.server.stop()


__all__ = ["PUSH_TIMINGS", "Exchange", "FunctionUrlServer", "LocalPush", "function_url_event", "with_push"]
