"""The pure-Python audio and clip readers, held to what FFmpeg (PyAV) says of real files it wrote, and the
pre-flight checks built on them: every way a driving audio or a first clip can be wrong has its code."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from inbetween.domain import catalog
from inbetween.errors import InvalidJob
from inbetween.provider import media
from inbetween.provider.validation import AudioInfo, ClipInfo, inspect_audio, inspect_clip, inspect_input
from media_fakes import av_duration, box_offset, quarter_turned, write_audio, write_video
from provider_fakes import frame

# -- audio readers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "seconds", "kw"),
    [
        ("mono.wav", 3.0, {}),
        ("stereo-8k.wav", 2.5, {"rate": 8000, "layout": "stereo"}),
        ("mono.mp3", 3.0, {}),
        ("stereo-48k.mp3", 7.25, {"rate": 48000, "layout": "stereo"}),
        # MPEG-2 and MPEG-2.5 layer III: 576 samples a frame
        ("mpeg2-22k.mp3", 4.0, {"rate": 22050}),
        ("mpeg25-8k.mp3", 3.0, {"rate": 8000}),
        # no Xing/Info frame: the frames alone tell the length (it ends on a whole frame)
        ("no-xing.mp3", 5.0, {"options": {"write_xing": "0"}}),
    ],
)
def test_audio_length_matches_ffmpeg(tmp_path, name, seconds, kw):
    path = tmp_path / name
    data = write_audio(path, seconds, **kw)
    facts = media.read_audio(data)
    assert facts.format == path.suffix[1:]
    assert facts.sample_rate == kw.get("rate", 44100)
    assert facts.channels == (2 if kw.get("layout") == "stereo" else 1)
    # FFmpeg drops the encoder's delay and padding (the LAME tag); so do we. Without a tag, both count
    # whole frames: within one frame of the tone written.
    assert facts.duration_s == pytest.approx(av_duration(path), abs=0.001)
    assert facts.duration_s == pytest.approx(seconds, abs=0.05)


def test_sniffing_goes_by_content_not_name(tmp_path):
    wav = write_audio(tmp_path / "a.wav", 2.0)
    mp3 = write_audio(tmp_path / "a.mp3", 2.0)
    mp4 = write_video(tmp_path / "a.mp4", 2.0)
    mov = write_video(tmp_path / "a.mov", 2.0)
    assert [media.sniff(d) for d in (wav, mp3, mp4, mov)] == ["wav", "mp3", "mp4", "mov"]
    # an MP3 without an ID3 tag starts with a frame header
    assert media.sniff(mp3[mp3.index(b"\xff\xfb") :]) == "mp3"
    assert media.sniff(b"just some text, not media") is None
    assert media.sniff(b"\xff\xfb\x90") is None  # one would-be header, nothing after it


def test_wav_streamed_without_a_length_counts_the_bytes_present(tmp_path):
    data = bytearray(write_audio(tmp_path / "a.wav", 3.0, rate=8000))
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"  # what a writer that cannot seek back leaves
    assert media.read_wav(bytes(data)).duration_s == pytest.approx(3.0)


def _cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


BROKEN_AUDIO = [
    ("wav truncated", lambda d: _cut(d["wav"], 0.6), "WAV is truncated"),
    ("wav without data chunk", lambda d: d["wav"][:36], "no data chunk"),
    ("wav without format chunk", lambda d: b"RIFF\x04\x00\x00\x00WAVE", "no format chunk"),
    ("mp3 truncated mid-frame", lambda d: d["cbr"][: len(d["cbr"]) - 100], "cut off"),
    ("mp3 truncated on a frame boundary", lambda d: _on_frame_boundary(d["mp3"]), "announces"),
    ("mp3 with junk after its frames", lambda d: d["mp3"] + b"junk" * 400, "not MP3 frames"),
    ("mp3 tag only", lambda d: d["mp3"][: d["mp3"].index(b"\xff\xfb")], "no MPEG audio"),
    ("id3 tag cut short", lambda d: b"ID3\x04\x00\x00\x00\x00\x10\x00", "ID3"),
    ("garbage", lambda d: b"\x00\x01garbage" * 50, "not a WAV or MP3"),
]


def _on_frame_boundary(data: bytes) -> bytes:
    """The MP3 cut right after its first few frames (its Xing header announces many more)."""
    at = data.index(b"\xff\xfb")  # MPEG-1 layer III, the first frame after the ID3 tag
    for _ in range(5):
        header = data[at : at + 4]
        bitrate = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[header[2] >> 4] * 1000
        rate = (44100, 48000, 32000)[(header[2] >> 2) & 3]
        at += 144 * bitrate // rate + ((header[2] >> 1) & 1)
    assert data[at : at + 2] == b"\xff\xfb"  # still on a frame boundary
    return data[:at]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    return {
        "wav": write_audio(folder / "a.wav", 3.0, rate=8000),
        "mp3": write_audio(folder / "a.mp3", 3.0),
        "cbr": write_audio(folder / "cbr.mp3", 3.0, options={"write_xing": "0"}),
    }


@pytest.mark.parametrize(("case", "make", "says"), BROKEN_AUDIO, ids=[c for c, _, _ in BROKEN_AUDIO])
def test_broken_audio_is_named_as_such(audio_files, case, make, says):
    with pytest.raises(media.MediaError) as caught:
        media.read_audio(make(audio_files))
    assert says in str(caught.value)


# -- clip readers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "seconds", "kw"),
    [
        ("plain.mp4", 3.0, {}),
        ("wide.mov", 2.5, {"size": (640, 360)}),
        # the index (moov) before the media data
        ("faststart.mp4", 4.0, {"options": {"movflags": "faststart"}}),
        # fragments: the movie header says 0 s, the fragments add up
        ("fragmented.mp4", 4.0, {"options": {"movflags": "frag_keyframe+empty_moov"}}),
        # the first fragment's samples in moov (the movie header counts only those), then fragments
        (
            "fragmented-after-moov.mp4",
            3.0,
            {"options": {"movflags": "frag_keyframe", "frag_duration": "500000"}, "with_audio": True},
        ),
        ("with-sound.mp4", 6.0, {"with_audio": True}),
    ],
)
def test_clip_length_and_size_match_ffmpeg(tmp_path, name, seconds, kw):
    path = tmp_path / name
    data = write_video(path, seconds, **kw)
    facts = media.read_clip(data)
    assert facts.format == path.suffix[1:]
    assert (facts.width, facts.height) == kw.get("size", (320, 240))
    assert facts.duration_s == pytest.approx(av_duration(path), abs=0.05)
    assert facts.duration_s == pytest.approx(seconds, abs=0.05)


def test_fragments_without_their_start_times_still_add_up(tmp_path):
    path = tmp_path / "f.mp4"
    data = write_video(path, 3.0, options={"movflags": "frag_keyframe", "frag_duration": "500000"})
    assert data.count(b"tfdt") > 1
    facts = media.read_clip(data.replace(b"tfdt", b"junk"))
    assert facts.duration_s == pytest.approx(av_duration(path), abs=0.05)


def test_box_forms_the_readers_must_know(tmp_path):
    data = write_video(tmp_path / "q.mov", 2.0, options={"movflags": "faststart"})
    ftyp = struct.unpack(">I", data[:4])[0]
    # a classic QuickTime file, without an ftyp box
    classic = data[ftyp:]
    assert media.sniff(classic) == "mov" and media.read_clip(classic).duration_s == pytest.approx(2.0)
    # the last box's size 0: it runs to the end of the file
    mdat = box_offset(data, b"mdat")
    to_end = data[:mdat] + struct.pack(">I", 0) + data[mdat + 4 :]
    assert media.read_clip(to_end).duration_s == pytest.approx(2.0)
    # a 64-bit box size
    size = struct.unpack(">I", data[mdat : mdat + 4])[0]
    large = data[:mdat] + struct.pack(">I4sQ", 1, b"mdat", size + 8) + data[mdat + 8 :]
    assert media.read_clip(large).duration_s == pytest.approx(2.0)
    with pytest.raises(media.MediaError):
        media.read_clip(large[: mdat + 12])  # cut inside its 16-byte header


def test_wav_chunk_rules():
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    data_chunk = struct.pack("<4sI", b"data", 32000) + bytes(32000)
    odd = struct.pack("<4sI", b"LIST", 3) + b"abc\0"  # an odd-sized chunk is padded to even
    wav = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + fmt + odd + data_chunk
    assert media.read_wav(wav).duration_s == pytest.approx(2.0)
    for broken, says in (
        (b"RIFF\0\0\0\0WAVE" + data_chunk + fmt, "before its format"),
        (b"RIFF\0\0\0\0WAVE" + fmt.replace(struct.pack("<I", 16000), bytes(4)) + data_chunk, "damaged"),
        (b"RIFF\0\0\0\0WAVE" + fmt[:12], "format chunk is truncated"),
        (b"RIFX\0\0\0\0WAVE" + fmt + data_chunk, "not a WAV"),
    ):
        with pytest.raises(media.MediaError) as caught:
            media.read_wav(broken)
        assert says in str(caught.value)


def test_mp3_tags_around_the_audio(tmp_path):
    data = write_audio(tmp_path / "a.mp3", 2.0)
    length = media.read_mp3(data).duration_s
    # an ID3v1 tag, or zero padding, after the last frame
    assert media.read_mp3(data + b"TAG" + bytes(125)).duration_s == length
    assert media.read_mp3(data + bytes(3000)).duration_s == length
    # an ID3v2 tag whose size is not "syncsafe" is damaged
    with pytest.raises(media.MediaError) as caught:
        media.read_mp3(data[:6] + b"\x80\x00\x00\x00" + data[10:])
    assert "ID3 tag is damaged" in str(caught.value)


def test_other_mpeg_audio_layers_are_not_mp3(tmp_path):
    data = write_audio(tmp_path / "a.mp2", 2.0, codec="mp2")
    assert media.sniff(data) is None
    with pytest.raises(InvalidJob) as caught:
        inspect_audio(data, name="audio.mp3")
    assert caught.value.code == "UnsupportedAudioFormat"


def test_a_quarter_turned_clip_is_shown_with_its_sides_swapped(tmp_path):
    data = write_video(tmp_path / "phone.mp4", 2.0, size=(320, 240))
    facts = media.read_clip(quarter_turned(data))
    assert (facts.width, facts.height) == (240, 320)


def test_the_sample_entry_gives_the_size_when_the_track_header_does_not(tmp_path):
    data = bytearray(write_video(tmp_path / "a.mp4", 2.0, size=(352, 288)))
    at = data.index(b"tkhd") + 4
    sides = at + (52 if data[at] == 1 else 40) + 36
    data[sides : sides + 8] = bytes(8)
    facts = media.read_clip(bytes(data))
    assert (facts.width, facts.height) == (352, 288)


def _without(data: bytes, kind: bytes) -> bytes:
    """``data`` with the box ``kind``'s type renamed, so readers no longer find it."""
    at = box_offset(data, kind) + 4
    return data[:at] + b"junk" + data[at + 4 :]


BROKEN_CLIPS = [
    ("truncated index at the end", lambda d: _cut(d["plain"], 0.8), "truncated"),
    ("truncated media data", lambda d: _cut(d["faststart"], 0.8), "truncated"),
    ("no movie header", lambda d: _without(d["plain"], b"moov"), "no movie header"),
    ("no mvhd", lambda d: _without(d["plain"], b"mvhd"), "mvhd"),
    ("no media data", lambda d: _without(d["plain"], b"mdat"), "no media data"),
    ("no video track", lambda d: d["plain"].replace(b"vide", b"soun"), "no video track"),
    ("zero duration", lambda d: _zero_duration(d["plain"]), "how long"),
    ("damaged box header", lambda d: _damage_second_box(d["plain"]), "damaged"),
    ("audio, not video", lambda d: d["mp3"], "not an MP4 or MOV"),
    ("garbage", lambda d: b"\x00\x01garbage" * 50, "not an MP4 or MOV"),
]


def _damage_second_box(data: bytes) -> bytes:
    at = struct.unpack(">I", data[:4])[0]  # the second top-level box starts after ftyp
    return data[:at] + struct.pack(">I", 2) + data[at + 4 :]  # a size smaller than its own header


def _zero_duration(data: bytes) -> bytes:
    at = box_offset(data, b"mvhd") + 8
    assert data[at] == 0  # version 0: 32-bit duration after the times and the timescale
    return data[: at + 16] + struct.pack(">I", 0) + data[at + 20 :]


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "plain": write_video(folder / "plain.mp4", 3.0),
        "faststart": write_video(folder / "fast.mp4", 3.0, options={"movflags": "faststart"}),
        "mp3": write_audio(folder / "a.mp3", 2.0),
    }


@pytest.mark.parametrize(("case", "make", "says"), BROKEN_CLIPS, ids=[c for c, _, _ in BROKEN_CLIPS])
def test_broken_clips_are_named_as_such(clip_files, case, make, says):
    with pytest.raises(media.MediaError) as caught:
        media.read_clip(make(clip_files))
    assert says in str(caught.value)


# -- inspect_audio / inspect_clip: the limits, with a code and a hint each ------------------------------


def test_good_audio_is_described(tmp_path):
    data = write_audio(tmp_path / "audio.mp3", 4.0, layout="stereo")
    info = inspect_audio(data, name="audio.mp3")
    assert info == AudioInfo(
        format="mp3",
        duration_s=pytest.approx(4.0, abs=0.001),
        size_bytes=len(data),
        mime="audio/mpeg",
        sample_rate=44100,
        channels=2,
    )
    wav = write_audio(tmp_path / "audio.wav", 30.0, rate=8000)
    assert inspect_audio(wav).mime == "audio/wav"  # exactly the longest accepted


def test_good_clip_is_described(tmp_path):
    data = write_video(tmp_path / "first_clip.mov", 10.0, size=(640, 360), fps=5)
    info = inspect_clip(data, name="first_clip.mov")
    assert info == ClipInfo(
        format="mov",
        duration_s=pytest.approx(10.0, abs=0.01),
        width=640,
        height=360,
        size_bytes=len(data),
        mime="video/quicktime",
    )


BAD_AUDIO = [
    ("EmptyAudio", lambda p: b""),
    ("AudioFileTooLarge", lambda p: b"RIFF" + bytes(catalog.WAN27_AUDIO_LIMITS.max_bytes)),
    ("UnsupportedAudioFormat", lambda p: b"OggS" + bytes(200)),
    ("UnsupportedAudioFormat", lambda p: write_video(p / "v.mp4", 2.0)),
    ("CorruptAudio", lambda p: _cut(write_audio(p / "a.wav", 3.0, rate=8000), 0.5)),
    ("AudioTooShort", lambda p: write_audio(p / "a.mp3", 1.5)),
    # the case: 40 s of audio
    ("AudioTooLong", lambda p: write_audio(p / "a.wav", 40.0, rate=8000)),
    ("AudioTooLong", lambda p: write_audio(p / "a.wav", 30.1, rate=8000)),
]


@pytest.mark.parametrize(("code", "make"), BAD_AUDIO, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_AUDIO)])
def test_bad_audio_is_refused_with_a_code_and_a_hint(tmp_path, code, make):
    with pytest.raises(InvalidJob) as caught:
        inspect_audio(make(tmp_path), name="audio.mp3")
    error = caught.value
    assert (error.code, error.field) == (code, "audio.mp3")
    assert error.hint and str(error).startswith("audio.mp3") and str(error).endswith(error.hint)


def test_audio_size_is_checked_before_anything_is_parsed(monkeypatch):
    def explode(data):
        raise AssertionError("parsed a file that was already too large")

    monkeypatch.setattr(media, "sniff", explode)
    with pytest.raises(InvalidJob) as caught:
        inspect_audio(b"x" * 2048, limits=dataclasses.replace(catalog.WAN27_AUDIO_LIMITS, max_bytes=1024))
    assert caught.value.code == "AudioFileTooLarge"


BAD_CLIPS = [
    ("EmptyClip", lambda p: b""),
    ("UnsupportedClipFormat", lambda p: write_audio(p / "a.wav", 3.0, rate=8000)),
    ("UnsupportedClipFormat", lambda p: b"\x1a\x45\xdf\xa3" + bytes(200)),  # WebM/Matroska
    ("CorruptClip", lambda p: _cut(write_video(p / "c.mp4", 3.0), 0.7)),
    ("ClipTooShort", lambda p: write_video(p / "c.mp4", 1.5)),
    # the case: a first clip of 12 s
    ("ClipTooLong", lambda p: write_video(p / "c.mp4", 12.0, size=(240, 240), fps=5)),
    ("ClipTooSmall", lambda p: write_video(p / "c.mp4", 2.0, size=(320, 200))),
    ("ClipAspectRatio", lambda p: write_video(p / "c.mp4", 2.0, size=(2000, 240), fps=5)),
]


@pytest.mark.parametrize(("code", "make"), BAD_CLIPS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_CLIPS)])
def test_bad_clips_are_refused_with_a_code_and_a_hint(tmp_path, code, make):
    with pytest.raises(InvalidJob) as caught:
        inspect_clip(make(tmp_path), name="first_clip.mp4")
    error = caught.value
    assert (error.code, error.field) == (code, "first_clip.mp4")
    assert error.hint and str(error).startswith("first_clip.mp4") and str(error).endswith(error.hint)


def test_clip_size_is_checked_before_anything_is_parsed(monkeypatch):
    def explode(data):
        raise AssertionError("parsed a file that was already too large")

    monkeypatch.setattr(media, "sniff", explode)
    with pytest.raises(InvalidJob) as caught:
        inspect_clip(b"x" * 2048, limits=dataclasses.replace(catalog.WAN27_CLIP_LIMITS, max_bytes=1024))
    assert caught.value.code == "ClipFileTooLarge"
    assert catalog.WAN27_CLIP_LIMITS.max_bytes == 100 * 1024 * 1024


def test_a_clip_larger_than_the_limit_is_refused(tmp_path):
    data = write_video(tmp_path / "c.mp4", 2.0, size=(480, 272))
    tight = dataclasses.replace(catalog.WAN27_CLIP_LIMITS, max_side=400)
    with pytest.raises(InvalidJob) as caught:
        inspect_clip(data, limits=tight)
    assert caught.value.code == "ClipTooLarge"


def test_inspect_input_uses_the_models_limits(tmp_path):
    # a 12 MB file: too large for a kf2v frame (10 MB), not for a wan2.7 one (20 MB)
    big = b"not an image at all" + bytes(12 * 1024 * 1024)
    with pytest.raises(InvalidJob) as caught:
        inspect_input("first", big, model="wan2.2-kf2v-flash")
    assert caught.value.code == "ImageFileTooLarge"
    with pytest.raises(InvalidJob) as caught:
        inspect_input("first", big, model="wan2.7-i2v")
    assert caught.value.code == "NotAnImage"  # past the size check: only then is it looked at
    # an 8:1 frame is fine on wan2.7; 9:1 is not (kf2v documents no bound)
    assert inspect_input("last", frame("PNG", (1920, 240), "L"), model="wan2.7-i2v").width == 1920
    wide = frame("PNG", (2160, 240), "L")
    assert inspect_input("first", wide, model="wan2.2-kf2v-flash").width == 2160
    with pytest.raises(InvalidJob) as caught:
        inspect_input("first", wide, model="wan2.7-i2v")
    assert caught.value.code == "ImageAspectRatio"
    audio = write_audio(tmp_path / "a.mp3", 3.0)
    assert isinstance(inspect_input("audio", audio, model="wan2.7-i2v-2026-04-25"), AudioInfo)
    clip = write_video(tmp_path / "c.mp4", 3.0)
    assert isinstance(inspect_input("first_clip", clip, model="wan2.7-i2v"), ClipInfo)
    # kf2v takes neither
    for role, data in (("audio", audio), ("first_clip", clip)):
        with pytest.raises(InvalidJob) as caught:
            inspect_input(role, data, model="wan2.2-kf2v-flash")
        assert caught.value.code == "MediaNotSupported" and "wan2.7-i2v" in caught.value.hint
    with pytest.raises(InvalidJob) as caught:
        inspect_input("first", frame(), model="wan9-unknown")
    assert caught.value.code == "UnknownModel"
