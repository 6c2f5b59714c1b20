"""A local Standard Webhooks receiver: verifies signatures, keeps and prints the events it accepts.

    with WebhookReceiver(secret="whsec_...") as receiver:
        url = receiver.url                  # http://127.0.0.1:PORT/webhook
        event = receiver.wait_for_event(timeout=30)

Bad or missing signatures are answered 401 and kept in ``rejected`` (never printed with the secret).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from inbetween.webhooks import InvalidSignature, verify

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    headers: dict[str, str]
    body: bytes
    path: str

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    def summary(self) -> str:
        payload = self.payload
        data = payload.get("data", {})
        video = data.get("video", {})
        parts = [
            f"id={self.id}",
            f"type={payload.get('type')}",
            f"status={data.get('status')}",
            f"job={data.get('job_id') or data.get('job')}",
        ]
        if video.get("url"):
            parts.append(f"video={video['url']}")
        if data.get("error"):
            parts.append(f"error={data['error'].get('code')}: {data['error'].get('message')}")
        return " ".join(parts)


@dataclass
class _State:
    events: list[ReceivedEvent] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (webhook-id, reason)
    changed: threading.Condition = field(default_factory=threading.Condition)


class WebhookReceiver:
    def __init__(
        self,
        secret: str | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/webhook",
        on_event: Callable[[ReceivedEvent], None] | None = None,
        on_reject: Callable[[str, str], None] | None = None,
    ):
        self._secret = secret
        self._host = host
        self._port = port
        self.path = path
        self._on_event = on_event
        self._on_reject = on_reject
        self._state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def set_secret(self, secret: str) -> None:
        """For a receiver started before the stack that generates its secret (until then: 401)."""
        self._secret = secret

    def __repr__(self) -> str:
        return f"WebhookReceiver(url={self.url if self._httpd else None!r})"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(413, {"error": "body too large"})
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    if receiver._secret is None:
                        raise InvalidSignature("the receiver has no secret yet")
                    verify(receiver._secret, headers, body)
                    json.loads(body)
                except (InvalidSignature, ValueError) as exc:
                    reason = str(exc) if isinstance(exc, InvalidSignature) else "body is not JSON"
                    receiver._reject(headers.get("webhook-id", ""), reason)
                    self._answer(401, {"error": reason})
                    return
                receiver._accept(ReceivedEvent(headers=headers, body=body, path=self.path))
                self._answer(204, None)

            def _answer(self, status: int, payload: dict | None) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                if data:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the receiver is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}{self.path}"

    @property
    def events(self) -> list[ReceivedEvent]:
        with self._state.changed:
            return list(self._state.events)

    @property
    def rejected(self) -> list[tuple[str, str]]:
        with self._state.changed:
            return list(self._state.rejected)

    def wait_for_event(self, timeout: float, predicate: Callable[[ReceivedEvent], bool] | None = None):
        """The first accepted event matching ``predicate``; TimeoutError if none arrives in time."""

        def found() -> ReceivedEvent | None:
            return next((e for e in self._state.events if predicate is None or predicate(e)), None)

        with self._state.changed:
            if not self._state.changed.wait_for(lambda: found() is not None, timeout=timeout):
                raise TimeoutError(f"no verified webhook arrived within {timeout:.0f} s")
            return found()

    def _accept(self, event: ReceivedEvent) -> None:
        with self._state.changed:
            self._state.events.append(event)
            self._state.changed.notify_all()
        if self._on_event:
            self._on_event(event)

    def _reject(self, msg_id: str, reason: str) -> None:
        with self._state.changed:
            self._state.rejected.append((msg_id, reason))
            self._state.changed.notify_all()
        if self._on_reject:
            self._on_reject(msg_id, reason)
