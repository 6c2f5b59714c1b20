"""Helpers shared by the webhook tests (imported as a plain module: the test folder is on sys.path).

Name resolution is always stubbed; the only sockets opened go to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import threading

import httpx
from inbetween.webhooks import (
    AddressPolicy,
    WebhookSender,
    build_event,
    new_secret,
)

HOST = "hooks.example.com"
URL = f"https://{HOST}/inbetween/hook?token=url-token-123"
PUBLIC_V4 = "8.8.8.8"
PUBLIC_V6 = "2606:4700:4700::1111"
CLOUD = AddressPolicy()
LOCAL = AddressPolicy(allow_loopback=True, allow_http=True)
NOW = 1_800_000_000.0


class StubResolver:
    """getaddrinfo stand-in: host -> addresses, optionally a different answer on each call. Counts calls."""

    def __init__(self, *answers: dict[str, list[str]]):
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        table = self.answers[min(len(self.calls), len(self.answers) - 1)]
        self.calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in table[host]
        ]


def resolving(host: str, *addresses: str) -> StubResolver:
    return StubResolver({host: list(addresses)})


def no_resolution(*args, **kwargs):
    raise AssertionError("the guard must not resolve this host")


class Recorder:
    """A MockTransport handler that answers from a list of responses and keeps every request."""

    def __init__(self, *responses: httpx.Response):
        self.responses = list(responses) or [httpx.Response(204)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        template = self.responses[min(len(self.requests), len(self.responses)) - 1]
        return httpx.Response(template.status_code, headers=template.headers, content=template.content)


def sender_with(
    handler, *, secret: str | None = None, policy: AddressPolicy = CLOUD, resolver=None
) -> WebhookSender:
    return WebhookSender(
        secret or new_secret(),
        policy,
        resolver=resolver or resolving(HOST, PUBLIC_V4),
        transport=httpx.MockTransport(handler),
    )


def event_body() -> bytes:
    return build_event(
        "video.completed",
        {"job_id": "job_1", "status": "SUCCEEDED", "video_url": "https://cdn.example.com/v.mp4"},
        occurred_at=dt.datetime(2027, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
    )


class LoopbackServer:
    """http.server on 127.0.0.1:<ephemeral> in a thread; records (headers, body) and answers `status`."""

    def __init__(self, status: int = 204):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                owner.received.append(
                    ({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                )
                self.send_response(owner.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
