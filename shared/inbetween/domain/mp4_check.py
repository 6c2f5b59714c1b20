"""Checks that a byte stream is an MP4 with a video track, as it streams past (no decoder needed).

Walks the top-level boxes (ftyp, moov, mdat, ...) and keeps only the moov box, which is small, to find a
track whose handler is 'vide'. Works whether moov comes before or after mdat.
"""

from __future__ import annotations

import struct

MAX_MOOV_BYTES = 64 * 1024 * 1024


class Mp4Inspector:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0  # bytes of the current box body still to skip
        self._moov_left = 0
        self._moov = bytearray()
        self.boxes: list[str] = []
        self.total = 0
        self.error: str | None = None

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.error:
            return
        view = memoryview(chunk)
        while view:
            if self._moov_left:
                take = min(self._moov_left, len(view))
                self._moov += view[:take]
                self._moov_left -= take
                view = view[take:]
                continue
            if self._skip:
                take = min(self._skip, len(view))
                self._skip -= take
                view = view[take:]
                continue
            need = 16 - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            if len(self._buffer) < 8:
                continue
            size, kind = struct.unpack(">I4s", bytes(self._buffer[:8]))
            header = 8
            if size == 1:
                if len(self._buffer) < 16:
                    continue
                size = struct.unpack(">Q", bytes(self._buffer[8:16]))[0]
                header = 16
            elif size == 0:
                size = 1 << 62  # box runs to the end of the file
            name = kind.decode("latin-1")
            if size < header or not name.isprintable():
                self.error = "not an MP4: bad box header"
                return
            self.boxes.append(name)
            leftover = bytes(self._buffer[header:])
            self._buffer.clear()
            body = size - header
            if name == "moov":
                if body > MAX_MOOV_BYTES:
                    self.error = "MP4 moov box is implausibly large"
                    return
                self._moov_left = body
                take = min(body, len(leftover))
                self._moov += leftover[:take]
                self._moov_left -= take
                rest = leftover[take:]
            else:
                take = min(body, len(leftover))
                self._skip = body - take
                rest = leftover[take:]
            if rest:
                view = memoryview(bytes(rest) + bytes(view))

    def download_verdict(self, expected_bytes: int | None) -> str | None:
        """None when a download fed in whole is all of the ``expected_bytes`` it announced (None: not
        announced) and an MP4 with a video track; otherwise what is wrong."""
        if expected_bytes is not None and self.total != expected_bytes:
            return f"video download incomplete: got {self.total} of {expected_bytes} bytes"
        return self.verdict()

    def verdict(self) -> str | None:
        """None when the stream is an MP4 with a video track; otherwise what is wrong."""
        if self.error:
            return self.error
        if not self.boxes or self.boxes[0] != "ftyp":
            return "not an MP4: the file does not start with an ftyp box"
        if "moov" not in self.boxes or self._moov_left:
            return "MP4 has no complete moov box (truncated download?)"
        if "mdat" not in self.boxes:
            return "MP4 has no media data"
        if self._skip:
            return "MP4 is truncated"
        moov = bytes(self._moov)
        at = moov.find(b"hdlr")
        while at != -1:
            if moov[at + 12 : at + 16] == b"vide":
                return None
            at = moov.find(b"hdlr", at + 4)
        return "MP4 has no video track"
