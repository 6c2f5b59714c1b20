"""Fixtures for the provider tests: clients over MockTransport and local servers that misbehave."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from inbetween.provider import DashScopeClient
from provider_fakes import BASE_URL, FAKE_KEY


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps) -> Iterator[Callable[..., DashScopeClient]]:
    made: list[httpx.Client] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], **kw) -> DashScopeClient:
        http = httpx.Client(transport=httpx.MockTransport(handler))
        made.append(http)
        return DashScopeClient(FAKE_KEY, BASE_URL, http=http, sleep=sleeps.append, **kw)

    yield make
    for http in made:
        http.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A base URL on 127.0.0.1 whose server accepts connections (kernel backlog) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    host, port = server.getsockname()
    try:
        yield f"http://{host}:{port}/api/v1"
    finally:
        server.close()


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """A base URL on 127.0.0.1 where nothing listens: connections are refused."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))  # bound but not listening: the port stays ours and refuses connects
    host, port = holder.getsockname()
    try:
        yield f"http://{host}:{port}/api/v1"
    finally:
        holder.close()
