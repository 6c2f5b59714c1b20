"""moto in server mode on a loopback port, in a thread of this process: what the integration tests and
the bench run against (the local stack starts its own the same way).

Server mode rather than ``mock_aws``: the provider emulator fetches presigned S3 URLs over HTTP, and
requests from several threads reach one set of backends. DynamoDB requests are serialized as in the
local stack (moto's server threads do not make a conditional write atomic), and a delete in a versioned
bucket sends S3's ``ObjectRemoved:DeleteMarkerCreated`` notification as on AWS (moto does not).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["MotoServer"]


class MotoServer:
    """``with MotoServer() as moto: ... moto.url``; ``port`` 0 picks an ephemeral one."""

    def __init__(self, port: int = 0):
        self.port = port
        self._server: Any = None

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        from . import _announce_delete_markers, _check_port_free, _serialize_moto_dynamodb

        if self._server is not None:
            return self
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
        _serialize_moto_dynamodb()
        _announce_delete_markers()  # S3's ObjectRemoved:DeleteMarkerCreated, which moto does not send
        if self.port:
            _check_port_free(self.port)  # ThreadedMotoServer waits forever when it cannot bind
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the moto server is not started")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
