"""The provider's video links: a streamed GET with no redirects, its failures sorted for completion."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from inbetween.domain.models import VideoDownload
from inbetween.errors import VideoDownloadFailed, VideoLinkExpired

CHUNK = 1024 * 1024
VIDEO_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
# what a dead link answers: the provider's links last 24 hours
EXPIRED_STATUSES = (403, 404, 410)


class HttpVideoSource:
    """``inbetween.ports.VideoSource`` over one ``httpx.Client``, built on first use."""

    def __init__(self, http: httpx.Client | None = None, *, chunk_bytes: int = CHUNK):
        self._http = http
        self._owns_http = http is None
        self._chunk_bytes = chunk_bytes

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=VIDEO_TIMEOUT, follow_redirects=False)
        return self._http

    @contextmanager
    def open(self, url: str) -> Iterator[VideoDownload]:
        try:
            with self._client().stream("GET", url) as resp:
                if resp.status_code in EXPIRED_STATUSES:
                    raise VideoLinkExpired(f"HTTP {resp.status_code}")
                if resp.status_code != 200:
                    raise VideoDownloadFailed(f"video download answered HTTP {resp.status_code}; will retry")
                length = resp.headers.get("content-length")
                yield VideoDownload(
                    length=int(length) if length and length.isdigit() else None,
                    chunks=resp.iter_bytes(self._chunk_bytes),
                )
        except httpx.HTTPError as exc:
            # only the class name: httpx messages quote the URL, and a signed link is a credential
            raise VideoDownloadFailed(f"video download failed: {type(exc).__name__}") from None

    def close(self) -> None:
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None
