"""Audio and video facts read from the bytes, in pure Python (the Lambda layer has no PyAV or ffmpeg).

- WAV: the RIFF header (``fmt `` and ``data`` chunks): duration = data size / byte rate.
- MP3: the frame headers, walked from the first to the last (after an ID3v2 tag); duration = frames x
  samples per frame / sample rate. A Xing/Info or VBRI header frame is not audio, and its frame count
  tells a truncated file apart.
- MP4 / MOV: the top-level boxes (one running past the end of the file: truncated); the movie header
  (``moov/mvhd``: timescale, duration) and the video track's header (``trak/tkhd``: width, height, turned
  by its matrix), with the sample description (``stsd``) as a fallback for the size. A fragmented file
  (movie duration 0) is measured by ``mvex/mehd``, else by adding up its fragments' sample durations.

Each reader takes the whole file and returns what it found, or raises ``MediaError`` saying what is wrong
(not that format, truncated, damaged). ``sniff`` names the format from the content, never the file name.
The checks against a model's limits (``InvalidJob`` with a hint) are ``inspect_audio``/``inspect_clip``
in ``inbetween.provider.validation``.

Why here and not in the domain: these describe the provider's inputs, beside ``inspect_image``, and only
the provider adapter's validation uses them; the domain keeps the pipeline's own rules.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

WAV, MP3, MP4, MOV = "wav", "mp3", "mp4", "mov"
MIME_TYPES = {WAV: "audio/wav", MP3: "audio/mpeg", MP4: "video/mp4", MOV: "video/quicktime"}

# A moov box larger than this is not a 100 MB clip's index; refuse rather than walk it.
MAX_MOOV_BYTES = 64 * 1024 * 1024
# MP3 sniffing: this many consecutive valid frame headers make a stream MP3 (one could be chance).
_MP3_SNIFF_FRAMES = 3
_QUICKTIME_TOP_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


class MediaError(ValueError):
    """The bytes are not a readable file of the kind asked for; the message says why."""


@dataclass(frozen=True, slots=True)
class AudioFacts:
    format: str  # "wav" | "mp3"
    duration_s: float
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class ClipFacts:
    format: str  # "mp4" | "mov"
    duration_s: float
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    """The format the first bytes show: "wav", "mp3", "mp4" or "mov"; None for anything else."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return WAV
    if data[:3] == b"ID3" or _mp3_frames_at(data, 0, _MP3_SNIFF_FRAMES):
        return MP3
    if len(data) >= 8:
        kind = data[4:8]
        if kind == b"ftyp":
            return MOV if data[8:12] == b"qt  " else MP4
        if kind in _QUICKTIME_TOP_BOXES:
            return MOV  # classic QuickTime files start without an ftyp box
    return None


def read_audio(data: bytes) -> AudioFacts:
    kind = sniff(data)
    if kind == WAV:
        return read_wav(data)
    if kind == MP3:
        return read_mp3(data)
    raise MediaError("not a WAV or MP3 file")


def read_clip(data: bytes) -> ClipFacts:
    if sniff(data) not in (MP4, MOV):
        raise MediaError("not an MP4 or MOV file")
    return read_mp4(data)


# -- WAV ----------------------------------------------------------------------------------------------


def read_wav(data: bytes) -> AudioFacts:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise MediaError("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    at = 12
    while at + 8 <= len(data):
        chunk, size = struct.unpack_from("<4sI", data, at)
        body = at + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise MediaError("WAV format chunk is truncated")
            tag, channels, rate, byte_rate = struct.unpack_from("<HHII", data, body)
            fmt = (tag, channels, rate, byte_rate)
        elif chunk == b"data":
            if fmt is None:
                raise MediaError("WAV data comes before its format chunk")
            _, channels, rate, byte_rate = fmt
            if channels == 0 or rate == 0 or byte_rate == 0:
                raise MediaError("WAV format chunk is damaged (zero channels, rate or byte rate)")
            available = len(data) - body
            if size in (0, 0xFFFFFFFF):
                size = available  # written as a stream, before the length was known
            elif size > available:
                raise MediaError(
                    f"WAV is truncated: its data chunk says {size} bytes, the file holds {available}"
                )
            return AudioFacts(WAV, size / byte_rate, rate, channels)
        at = body + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise MediaError("WAV has no format chunk (truncated?)")
    raise MediaError("WAV has no data chunk (truncated?)")


# -- MP3 ----------------------------------------------------------------------------------------------

# kbit/s by [MPEG-1?][layer][index]; index 0 is "free format", 15 is invalid
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True, slots=True)
class _Frame:
    version: int  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer: int  # 1, 2, 3
    sample_rate: int
    channels: int
    length: int  # bytes, header included
    samples: int  # per frame

    def same_stream(self, other: _Frame) -> bool:
        return (self.version, self.layer, self.sample_rate) == (other.version, other.layer, other.sample_rate)


def _frame_at(data: bytes, at: int) -> _Frame | None:
    if at + 4 > len(data):
        return None
    b1, b2, b3, b4 = data[at], data[at + 1], data[at + 2], data[at + 3]
    if b1 != 0xFF or b2 & 0xE0 != 0xE0:
        return None
    version = (b2 >> 3) & 3
    layer = 4 - ((b2 >> 1) & 3)
    bitrate_index = b3 >> 4
    rate_index = (b3 >> 2) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format (which has no length in its header)
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _SAMPLE_RATES[version][rate_index]
    padding = (b3 >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // rate + padding) * 4, 384
    elif layer == 2 or mpeg1:
        length, samples = 144 * bitrate // rate + padding, 1152
    else:  # layer III of MPEG-2 / 2.5
        length, samples = 72 * bitrate // rate + padding, 576
    channels = 1 if (b4 >> 6) == 3 else 2
    return _Frame(version, layer, rate, channels, length, samples)


def _mp3_frames_at(data: bytes, at: int, count: int) -> bool:
    """Whether ``count`` consistent layer III frames follow each other from ``at`` (or fewer that end
    exactly at the end of the file)."""
    first = _frame_at(data, at)
    if first is None or first.layer != 3:
        return False
    frame = first
    for _ in range(count - 1):
        at += frame.length
        if at == len(data):
            return True
        following = _frame_at(data, at)
        if following is None or not following.same_stream(first):
            return False
        frame = following
    return True


def _id3v2_end(data: bytes) -> int:
    """Where the audio starts: after any ID3v2 tags (their size is a "syncsafe" 28-bit number)."""
    at = 0
    while data[at : at + 3] == b"ID3":
        if at + 10 > len(data):
            raise MediaError("MP3 is truncated inside its ID3 tag")
        size_bytes = data[at + 6 : at + 10]
        if any(b & 0x80 for b in size_bytes):
            raise MediaError("MP3 ID3 tag is damaged")
        size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
        footer = 10 if data[at + 5] & 0x10 else 0
        at += 10 + size + footer
        if at > len(data):
            raise MediaError("MP3 is truncated inside its ID3 tag")
    return at


@dataclass(frozen=True, slots=True)
class _InfoHeader:
    frames: int | None  # audio frames the header announces, if it says
    trimmed: int  # samples the encoder added (delay + padding, LAME tag), dropped by gapless decoders


def _info_header(data: bytes, at: int, frame: _Frame) -> _InfoHeader | None:
    """The Xing/Info (with its LAME tag) or VBRI header in the frame at ``at``, if that frame is one."""
    body = data[at : at + frame.length]
    if frame.version == 3:
        side = 17 if frame.channels == 1 else 32
    else:
        side = 9 if frame.channels == 1 else 17
    xing = 4 + side
    if body[xing : xing + 4] in (b"Xing", b"Info"):
        if len(body) < xing + 8:
            return _InfoHeader(None, 0)
        flags = struct.unpack_from(">I", body, xing + 4)[0]
        fields = xing + 8
        frames = None
        if flags & 1 and len(body) >= fields + 4:
            frames = int(struct.unpack_from(">I", body, fields)[0])
        # then, if flagged: the byte count (4), the seek table (100), the quality (4)
        lame = (
            fields + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
        )
        trimmed = 0
        # LAME tag: encoder (9), revision (1), lowpass (1), replay gain (8), flags (1), bitrate (1), then
        # the encoder delay and padding, 12 bits each
        if body[lame : lame + 4] in (b"LAME", b"Lavc", b"Lavf", b"L3.9") and len(body) >= lame + 24:
            packed = int.from_bytes(body[lame + 21 : lame + 24], "big")
            trimmed = (packed >> 12) + (packed & 0xFFF)
        return _InfoHeader(frames, trimmed)
    if body[36:40] == b"VBRI" and len(body) >= 36 + 18:
        return _InfoHeader(int(struct.unpack_from(">I", body, 36 + 14)[0]), 0)
    return None


def read_mp3(data: bytes) -> AudioFacts:
    start = _id3v2_end(data)
    first = _frame_at(data, start)
    if first is None or first.layer != 3:
        raise MediaError("not an MP3 file (no MPEG audio layer III frame at the start of the audio)")
    info = _info_header(data, start, first)
    at = start
    frames = 0
    while True:
        frame = _frame_at(data, at)
        if frame is None or not frame.same_stream(first):
            break
        if at + frame.length > len(data):
            raise MediaError(f"MP3 is truncated: its last frame is cut off after {frames} frames")
        frames += 1
        at += frame.length
    rest = data[at:]
    # what may follow the audio: an ID3v1 tag, an APE or Lyrics3 tag, zero padding
    if rest and not (
        rest[:3] == b"TAG" or rest[:8] == b"APETAGEX" or rest[:6] == b"LYRICS" or not rest.strip(b"\0")
    ):
        if len(rest) > first.length:
            raise MediaError(f"MP3 is damaged: {len(rest)} bytes after frame {frames} are not MP3 frames")
    audio_frames = frames
    trimmed = 0
    if info is not None:
        audio_frames -= 1  # the header frame carries no audio
        # some encoders count the header frame too: one frame short is not truncation
        if info.frames is not None and audio_frames < info.frames - 1:
            raise MediaError(
                f"MP3 is truncated: its header announces {info.frames} frames, the file holds {audio_frames}"
            )
        trimmed = info.trimmed
    samples = audio_frames * first.samples - trimmed
    if audio_frames <= 0 or samples <= 0:
        raise MediaError("MP3 holds no audio frames")
    return AudioFacts(MP3, samples / first.sample_rate, first.sample_rate, first.channels)


# -- MP4 / MOV ----------------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int, *, top: bool = False) -> list[tuple[bytes, int, int]]:
    """The boxes between ``start`` and ``end``: (type, body start, body end). Raises on a box that runs
    past ``end`` (at the top level, a box that runs past the end of the file: truncation)."""
    found: list[tuple[bytes, int, int]] = []
    at = start
    while at < end:
        if at + 8 > end:
            raise MediaError(
                "truncated: a box header is cut off" if top else "damaged: a box header is cut off"
            )
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                raise MediaError("truncated: a box header is cut off")
            size = struct.unpack_from(">Q", data, at + 8)[0]
            header = 16
        elif size == 0:
            size = end - at  # the box runs to the end (of the file, or of its parent)
        if size < header or not all(32 <= c < 127 for c in kind):
            raise MediaError("damaged: a box header is not valid")
        if at + size > end:
            if top:
                raise MediaError(
                    f"truncated: the '{kind.decode('latin-1')}' box runs past the end of the file"
                )
            raise MediaError(f"damaged: the '{kind.decode('latin-1')}' box runs past its parent")
        found.append((bytes(kind), at + header, at + size))
        at += size
    return found


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for name, body, body_end in _boxes(data, start, end):
        if name == kind:
            return body, body_end
    return None


def _need(data: bytes, at: int, size: int, end: int, what: str) -> None:
    if at + size > end or at + size > len(data):
        raise MediaError(f"damaged: the {what} box is too short")


def read_mp4(data: bytes) -> ClipFacts:
    kind = sniff(data)
    if kind not in (MP4, MOV):
        raise MediaError("not an MP4 or MOV file")
    top = _boxes(data, 0, len(data), top=True)
    moov = next(((body, end) for name, body, end in top if name == b"moov"), None)
    if moov is None:
        raise MediaError("has no movie header (moov box): truncated, or not finished writing")
    if moov[1] - moov[0] > MAX_MOOV_BYTES:
        raise MediaError("its movie header (moov box) is implausibly large")
    mvhd = _child(data, *moov, b"mvhd")
    if mvhd is None:
        raise MediaError("has no movie header (mvhd box)")
    video = next(
        (
            found
            for name, body, end in _boxes(data, *moov)
            if name == b"trak" and (found := _video_track(data, body, end))
        ),
        None,
    )
    if video is None:
        raise MediaError("has no video track")
    moofs = [(body, end) for name, body, end in top if name == b"moof"]
    if not any(name == b"mdat" for name, _, _ in top):
        raise MediaError("holds no media data (mdat box)")
    timescale, duration = _mvhd(data, *mvhd)
    seconds = duration / timescale if timescale else 0.0
    if moofs:
        # fragmented: the movie header covers the samples in moov only (often none); mvex/mehd may give
        # the whole length, else the video track's fragments tell where it ends
        mehd = _fragment_duration(data, *moov)
        if mehd and timescale:
            seconds = mehd / timescale
        elif video.timescale:
            trex = _trex_default(data, *moov, video.track_id)
            seconds = max(seconds, _fragments_end(data, moofs, video, trex))
    if seconds <= 0:
        raise MediaError("does not say how long it is (no duration in its movie header)")
    return ClipFacts(kind, seconds, video.width, video.height)


def _mvhd(data: bytes, body: int, end: int) -> tuple[int, int]:
    _need(data, body, 4, end, "mvhd")
    if data[body] == 1:
        _need(data, body, 32, end, "mvhd")
        timescale, duration = struct.unpack_from(">IQ", data, body + 20)
    else:
        _need(data, body, 20, end, "mvhd")
        timescale, duration = struct.unpack_from(">II", data, body + 12)
    return int(timescale), int(duration)


def _fragment_duration(data: bytes, moov: int, moov_end: int) -> int:
    """A fragmented file's duration from ``moov/mvex/mehd`` (movie timescale), or 0 when absent."""
    mvex = _child(data, moov, moov_end, b"mvex")
    mehd = _child(data, *mvex, b"mehd") if mvex else None
    if mehd is None:
        return 0
    body, end = mehd
    _need(data, body, 8, end, "mehd")
    if data[body] == 1:
        _need(data, body, 12, end, "mehd")
        return int(struct.unpack_from(">Q", data, body + 4)[0])
    return int(struct.unpack_from(">I", data, body + 4)[0])


def _trex_default(data: bytes, moov: int, moov_end: int, track_id: int) -> int:
    """The track's default sample duration for fragments (``moov/mvex/trex``), or 0."""
    mvex = _child(data, moov, moov_end, b"mvex")
    for name, body, end in _boxes(data, *mvex) if mvex else []:
        if name == b"trex" and body + 16 <= end and struct.unpack_from(">I", data, body + 4)[0] == track_id:
            return int(struct.unpack_from(">I", data, body + 12)[0])
    return 0


def _fragments_end(data: bytes, moofs: list[tuple[int, int]], video: _Track, trex_default: int) -> float:
    """Where the video track ends, in seconds: its samples in moov, then each of its track fragments
    (``moof/traf``), which may restate their start (``tfdt``), plus the durations of their runs."""
    position = video.duration
    for moof in moofs:
        for name, body, end in _boxes(data, *moof):
            if name != b"traf":
                continue
            tfhd = _child(data, body, end, b"tfhd")
            if tfhd is None:
                raise MediaError("damaged: a track fragment has no header (tfhd box)")
            _need(data, tfhd[0], 8, tfhd[1], "tfhd")
            flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
            if struct.unpack_from(">I", data, tfhd[0] + 4)[0] != video.track_id:
                continue
            default = trex_default
            if flags & 0x08:
                at = tfhd[0] + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
                _need(data, at, 4, tfhd[1], "tfhd")
                default = int(struct.unpack_from(">I", data, at)[0])
            tfdt = _child(data, body, end, b"tfdt")
            if tfdt is not None:
                wide = data[tfdt[0]] == 1
                _need(data, tfdt[0], 12 if wide else 8, tfdt[1], "tfdt")
                position = int(struct.unpack_from(">Q" if wide else ">I", data, tfdt[0] + 4)[0])
            for kind, run, run_end in _boxes(data, body, end):
                if kind == b"trun":
                    position += _run_length(data, run, run_end, default)
    return position / video.timescale


def _run_length(data: bytes, body: int, end: int, default: int) -> int:
    """The duration of one track run's samples, in the track's timescale."""
    _need(data, body, 8, end, "trun")
    flags = int.from_bytes(data[body + 1 : body + 4], "big")
    count = int(struct.unpack_from(">I", data, body + 4)[0])
    if not flags & 0x100:
        return count * default
    at = body + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    stride = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    _need(data, at, count * stride, end, "trun")
    return sum(struct.unpack_from(">I", data, at + i * stride)[0] for i in range(count))


@dataclass(frozen=True, slots=True)
class _Track:
    track_id: int
    timescale: int  # the track's own (mdhd), which fragments count in
    duration: int  # of its samples in moov (mdhd), in its timescale
    width: int  # as shown
    height: int


def _video_track(data: bytes, trak: int, trak_end: int) -> _Track | None:
    """A video track's id, timescale and (width, height) as shown; None for any other track."""
    mdia = _child(data, trak, trak_end, b"mdia")
    hdlr = _child(data, *mdia, b"hdlr") if mdia else None
    if mdia is None or hdlr is None:
        return None
    _need(data, hdlr[0], 12, hdlr[1], "hdlr")
    if data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
        return None
    timescale = track_duration = 0
    mdhd = _child(data, *mdia, b"mdhd")
    if mdhd is not None:
        wide = data[mdhd[0]] == 1  # version 1: 64-bit times and duration
        _need(data, mdhd[0], 32 if wide else 20, mdhd[1], "mdhd")
        if wide:
            timescale, track_duration = struct.unpack_from(">IQ", data, mdhd[0] + 20)
        else:
            timescale, track_duration = struct.unpack_from(">II", data, mdhd[0] + 12)
    track_id = width = height = 0
    turned = False
    tkhd = _child(data, trak, trak_end, b"tkhd")
    if tkhd is not None:
        body, end = tkhd
        _need(data, body, 4, end, "tkhd")
        version = data[body]
        # after version/flags: times, track id, reserved, duration (v1: 64-bit times and duration),
        # reserved, layer, group, volume, reserved, then the 3x3 matrix and the 16.16 width and height
        matrix = body + (52 if version == 1 else 40)
        _need(data, matrix, 44, end, "tkhd")
        track_id = int(struct.unpack_from(">I", data, body + (20 if version == 1 else 12))[0])
        a, b, _u, c, d = struct.unpack_from(">iiiii", data, matrix)
        width, height = (v >> 16 for v in struct.unpack_from(">II", data, matrix + 36))
        # a quarter turn (a = d = 0, b and c = +-1.0): shown with its sides swapped
        turned = a == 0 and d == 0 and abs(b) == 0x10000 and abs(c) == 0x10000
    if width == 0 or height == 0:
        width, height = _sample_entry_size(data, mdia)
    if width == 0 or height == 0:
        raise MediaError("video track does not say its width and height")
    if turned:
        width, height = height, width
    return _Track(track_id, int(timescale), int(track_duration), width, height)


def _sample_entry_size(data: bytes, mdia: tuple[int, int]) -> tuple[int, int]:
    """The coded width and height of the first visual sample entry (``minf/stbl/stsd``)."""
    minf = _child(data, *mdia, b"minf")
    stbl = _child(data, *minf, b"stbl") if minf else None
    stsd = _child(data, *stbl, b"stsd") if stbl else None
    if stsd is None:
        return 0, 0
    body, end = stsd
    entries = _boxes(data, body + 8, end) if body + 8 <= end else []
    if not entries:
        return 0, 0
    _, entry, entry_end = entries[0]
    # reserved (6), data reference index (2), pre-defined/reserved (16), then width and height
    _need(data, entry, 28, entry_end, "visual sample entry")
    width, height = struct.unpack_from(">HH", data, entry + 24)
    return int(width), int(height)
