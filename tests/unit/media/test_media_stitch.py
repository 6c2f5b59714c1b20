"""stitch_film on synthetic storyboards: frame counts, seams, timestamps, audio, blend, letterbox, memory."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import pytest
from inbetween_media import synth
from inbetween_media.frames import fit_image
from inbetween_media.pictures import FilmPictures
from inbetween_media.probe import probe_clip
from inbetween_media.stitch import StitchError, plan_film, stitch_film
from inbetween_media.verify import picture_distance, verify_film
from stitch_helpers import ROOT, SIZE, decode_audio, decode_pictures, pts_steps

SPF = 1600


def test_three_clips_make_one_film_with_each_keyframe_once(board, tmp_path):
    out = tmp_path / "film.mp4"
    report = stitch_film(board.clips, out)
    n = board.clip_frames
    assert report.clip_frames == tuple(n)
    assert report.total_frames == sum(n) - 2
    assert report.seams == (n[0] - 1, n[0] + n[1] - 2)
    assert report.size == SIZE and report.audio_duration_s is None and report.letterboxed == ()
    assert report.duration_s == pytest.approx(report.total_frames / 30)
    assert report.cpu_s > 0 and report.bytes == out.stat().st_size
    pictures = decode_pictures(out)
    assert len(pictures) == report.total_frames
    # continuous timestamps: one constant step
    assert set(pts_steps(out)) == {512}  # 15360 / 30
    # each seam frame is its keyframe; the frame before it is not (the duplicate was dropped)
    for k, s in enumerate(report.seams, start=1):
        assert picture_distance(pictures[s], board.keyframes[k]) < 3.0
        assert picture_distance(pictures[s - 1], pictures[s]) > 1.0
    assert picture_distance(pictures[0], board.keyframes[0]) < 3.0
    assert picture_distance(pictures[-1], board.keyframes[-1]) < 3.0
    assert verify_film(out, report, board.keyframes) == []


def test_the_film_is_h264_yuv420p_faststart_with_two_second_keyframes(board, tmp_path):
    out = tmp_path / "film.mp4"
    stitch_film(board.clips * 2, out)  # 6 clips, 174 frames: keyframes at most 60 frames apart
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        keys = [i for i, p in enumerate(c.demux(stream)) if p.size and p.is_keyframe]
    assert keys[0] == 0 and max(b - a for a, b in zip(keys, [*keys[1:], 174], strict=True)) <= 60


def test_the_soundtrack_is_sample_exact_and_continuous_across_a_seam(sound_board, tmp_path):
    out = tmp_path / "film.mp4"
    report = stitch_film(sound_board.clips, out)
    assert report.audio_duration_s == report.total_frames * SPF / 48000  # exact, in samples
    assert verify_film(out, report, sound_board.keyframes) == []
    audio = decode_audio(out)
    assert abs(len(audio) - report.total_frames * SPF) <= 1024
    # seam 0 joins two 450 Hz tones whose phase is 0 at every frame boundary: outside the 5 ms declick the
    # film's samples follow one unbroken sine (an offset of even 1/4 period would fail this)
    s0 = report.seams[0] * SPF
    ideal = synth.tone(len(audio), 450.0)
    for lo, hi in ((s0 - 2400, s0 - 480), (s0 + 480, s0 + 2400)):
        err = math.sqrt(sum((audio[i] - ideal[i]) ** 2 for i in range(lo, hi)) / (hi - lo))
        assert err < 0.03, (lo, hi, err)
    # seam 1 switches 450 Hz to 750 Hz at the seam's video time: count zero crossings either side
    s1 = report.seams[1] * SPF

    def hz(lo: int, hi: int) -> float:
        crossings = sum(1 for i in range(lo + 1, hi) if (audio[i - 1] < 0) != (audio[i] < 0))
        return crossings / 2 / ((hi - lo) / 48000)

    assert hz(s1 - 4800, s1 - 480) == pytest.approx(450, rel=0.05)
    assert hz(s1 + 480, s1 + 4800) == pytest.approx(750, rel=0.05)


def test_a_blend_of_f_frames_gives_the_documented_count(sound_board, tmp_path):
    out = tmp_path / "film.mp4"
    f = 4
    report = stitch_film(sound_board.clips, out, seam_blend_frames=f)
    n = sound_board.clip_frames
    assert report.total_frames == sum(n) - 2 * (1 + f)
    assert report.seams == (n[0] - 1 - f, n[0] + n[1] - 2 - 2 * f)
    assert report.audio_duration_s == report.total_frames * SPF / 48000
    assert verify_film(out, report, sound_board.keyframes) == []
    pictures = decode_pictures(out)
    # each window frame is the linear mix (1-w)*a + w*b, w = (j+1)/(F+1): nearer that than either clip's frame
    clip0, clip1 = decode_pictures(sound_board.clips[0]), decode_pictures(sound_board.clips[1])
    s = report.seams[0]
    for j in range(f):
        a, b = clip0[n[0] - 1 - f + j], clip1[j]
        mixed, ideal = pictures[s + j], synth.Image.blend(a, b, (j + 1) / (f + 1))
        d_ideal = picture_distance(mixed, ideal)
        assert d_ideal < 1.0 and d_ideal < min(picture_distance(mixed, a), picture_distance(mixed, b)), j


def test_a_clip_of_another_size_is_letterboxed(make_board, tmp_path):
    board = make_board("odd", sizes=[SIZE, (240, 240), SIZE])
    out = tmp_path / "film.mp4"
    report = stitch_film(board.clips, out)
    assert report.size == SIZE and report.letterboxed == (1,)
    pictures = decode_pictures(out)
    middle = pictures[(report.seams[0] + report.seams[1]) // 2].convert("L")
    # 240x240 in 320x240: 40 px bars left and right
    assert max(middle.crop((0, 0, 38, 240)).getdata()) < 24
    assert max(middle.crop((282, 0, 320, 240)).getdata()) < 24
    assert min(middle.crop((44, 0, 276, 240)).getdata()) > 24
    # the portrait clip's first frame, fitted, is the seam frame
    assert picture_distance(pictures[report.seams[0]], fit_image(board.keyframes[1], *SIZE)) < 3.0
    assert verify_film(out, report, board.keyframes) == []


def test_a_silent_storyboard_gives_a_silent_film(board, tmp_path):
    out = tmp_path / "film.mp4"
    report = stitch_film(board.clips, out)
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 0
    assert report.audio_duration_s is None


def test_a_clip_without_audio_becomes_silence_in_a_film_with_sound(make_board, tmp_path):
    board = make_board("mixed", clips=2, tones=[None, 450.0])
    out = tmp_path / "film.mp4"
    report = stitch_film(board.clips, out)
    audio = decode_audio(out)
    s = report.seams[0] * SPF

    def rms(lo: int, hi: int) -> float:
        return math.sqrt(sum(x * x for x in audio[lo:hi]) / (hi - lo))

    assert rms(0, s - 2048) < 0.005
    assert rms(s + 2048, len(audio)) == pytest.approx(0.3 / math.sqrt(2), rel=0.1)
    assert verify_film(out, report, board.keyframes) == []


def test_mono_and_full_range_clips_are_converted(board, tmp_path):
    # clip 1 again, as full-range yuvj420p video with a mono soundtrack
    odd = tmp_path / "fullrange_mono.mp4"
    with av.open(str(odd), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuvj420p"
        for i in range(30):
            frame = av.VideoFrame.from_image(synth.frame_between(1, i / 29, SIZE))
            frame = frame.reformat(format="yuvj420p", dst_color_range=2)
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    mono = tmp_path / "mono.mp4"
    pictures = decode_pictures(odd)
    synth.write_clip(mono, pictures, audio=synth.tone(30 * SPF, 450.0), audio_layout="mono")
    film = tmp_path / "film.mp4"
    report = stitch_film([board.clips[0], odd, board.clips[2]], film)
    seam = decode_pictures(film)[report.seams[0]]
    assert (
        picture_distance(seam, board.keyframes[1]) < 3.0
    )  # levels kept: read as limited range it would be ~6.4
    report = stitch_film([board.clips[0], mono, board.clips[2]], film)
    assert report.audio_duration_s == report.total_frames * SPF / 48000
    with av.open(str(film)) as c:
        assert c.streams.audio[0].codec_context.layout.name == "stereo"
    assert verify_film(film, report, board.keyframes) == []


def test_colour_tags_are_copied_from_the_first_clip(board, tmp_path):
    tagged = tmp_path / "bt709.mp4"
    with av.open(str(tagged), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        cc = vs.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = cc.color_range = 1  # BT.709, limited range
        for i, picture in enumerate(decode_pictures(board.clips[0])):
            frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    film = tmp_path / "film.mp4"
    stitch_film([tagged, *board.clips[1:]], film)
    info = probe_clip(film)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (1, 1, 1, 1)


def test_the_frame_hook_sees_every_frame_once_in_order(board, tmp_path):
    plan = plan_film(board.clips)
    seen: list[int] = []
    pictures = FilmPictures(plan.layout, plan.width, plan.height)

    def hook(index: int, frame: av.VideoFrame) -> None:
        seen.append(index)
        pictures(index, frame)

    report = stitch_film(board.clips, tmp_path / "film.mp4", on_frame=hook, plan=plan)
    assert seen == list(range(report.total_frames))
    assert pictures.sheet_png().startswith(b"\x89PNG") and pictures.poster_jpeg().startswith(b"\xff\xd8")


def test_clips_that_cannot_be_joined_are_refused(make_board, board, tmp_path):
    other = make_board("fps25", clips=1, fps=25, frames=25)
    with pytest.raises(StitchError, match="25 fps"):
        stitch_film([board.clips[0], other.clips[0]], tmp_path / "film.mp4")
    with pytest.raises(StitchError, match="needs at least"):
        stitch_film(board.clips, tmp_path / "film.mp4", seam_blend_frames=15)
    with pytest.raises(StitchError, match="no video stream|cannot open"):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video")
        stitch_film([bad], tmp_path / "film.mp4")


CHILD = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, {media!r})
    from inbetween_media.stitch import stitch_film
    clips = json.loads(sys.argv[1])
    report = stitch_film(clips, sys.argv[2])
    try:  # this image's own high-water mark (ru_maxrss keeps the forking parent's RSS as a floor)
        rss = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"frames": report.total_frames, "rss_kb": rss}}))
    """
)


def _peak_rss(clips: list[Path], out: Path) -> dict:
    script = CHILD.format(media=str(ROOT / "media"))
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps([str(c) for c in clips]), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_the_film(make_board, tmp_path):
    # Honest measure: peak RSS (VmHWM) of a child process (tracemalloc cannot see FFmpeg's frame buffers). A film
    # 8x longer must not need more memory in proportion: its decoded frames alone would be 8*2*60 frames of
    # 320x240 yuv420p = 110 MB (221 MB as RGB); streaming holds F+1 of them.
    board = make_board("long", clips=2, tones=[450.0, 450.0], frames=60)
    short = _peak_rss(board.clips, tmp_path / "short.mp4")
    long = _peak_rss(board.clips * 8, tmp_path / "long.mp4")
    assert long["frames"] == 16 * 60 - 15
    raw_mb = long["frames"] * SIZE[0] * SIZE[1] * 1.5 / 2**20
    growth_mb = (long["rss_kb"] - short["rss_kb"]) / 1024
    assert growth_mb < 0.05 * raw_mb, (growth_mb, raw_mb, short, long)
