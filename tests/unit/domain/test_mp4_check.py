"""The streaming MP4 check that completion runs before declaring a video stored."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest
from inbetween.domain.mp4_check import Mp4Inspector


@pytest.fixture(scope="module")
def mp4_bytes() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _inspect(data: bytes, chunk: int) -> str | None:
    inspector = Mp4Inspector()
    for i in range(0, len(data), chunk):
        inspector.feed(data[i : i + chunk])
    return inspector.verdict()


@pytest.mark.parametrize("chunk", [1, 7, 4096, 10**9])
def test_a_real_mp4_passes_whatever_the_chunking(mp4_bytes, chunk):
    assert _inspect(mp4_bytes, chunk) is None


def test_a_truncated_mp4_fails(mp4_bytes):
    assert _inspect(mp4_bytes[: len(mp4_bytes) // 2], 4096) is not None


def test_html_is_not_an_mp4():
    assert "not an MP4" in _inspect(b"<html><body>AccessDenied</body></html>", 64)


def test_an_mp4_without_a_video_track_fails():
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    hdlr = box(b"hdlr", b"\x00" * 8 + b"soun" + b"\x00" * 12)
    data = (
        box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"moov", box(b"trak", hdlr)) + box(b"mdat", b"\x00" * 32)
    )
    assert _inspect(data, 5) == "MP4 has no video track"


def test_a_download_is_judged_on_its_announced_length_before_its_boxes(mp4_bytes):
    inspector = Mp4Inspector()
    inspector.feed(mp4_bytes)
    assert inspector.download_verdict(len(mp4_bytes)) is None
    assert inspector.download_verdict(None) is None  # no Content-Length: the boxes alone decide
    assert inspector.download_verdict(len(mp4_bytes) + 1) == (
        f"video download incomplete: got {len(mp4_bytes)} of {len(mp4_bytes) + 1} bytes"
    )


def test_a_download_of_the_announced_length_still_needs_a_video():
    inspector = Mp4Inspector()
    inspector.feed(b"<html>AccessDenied</html>")
    assert "not an MP4" in inspector.download_verdict(25)
