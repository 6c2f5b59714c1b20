"""probe_clip: counts frames by demux, reads the streams' parameters."""

from __future__ import annotations

from array import array

import pytest
from inbetween_media import synth
from inbetween_media.probe import ProbeError, probe_clip


def test_a_clip_is_probed_by_demux(make_board):
    board = make_board("odd_count", clips=1, tones=[450.0], frames=31)
    info = probe_clip(board.clips[0])
    assert (info.codec, info.width, info.height, info.pix_fmt) == ("h264", 320, 240, "yuv420p")
    assert (info.fps, info.frames, info.start_pts) == (30, 31, 0)
    assert info.duration_s == pytest.approx(31 / 30)
    assert len(info.extradata_sha256) == 64
    assert info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48000, 2)
    assert info.audio.duration_s == pytest.approx(31 / 30, abs=1e-6)


def test_a_mono_silent_or_broken_file(tmp_path):
    pictures = [synth.keyframe(0), synth.keyframe(1)] * 3
    mono = synth.write_clip(
        tmp_path / "mono.mp4", pictures, audio=array("f", bytes(4 * 9600)), audio_layout="mono"
    )
    assert probe_clip(mono).audio.channels == 1
    silent = synth.write_clip(tmp_path / "silent.mp4", pictures)
    assert probe_clip(silent).audio is None and probe_clip(silent).frames == 6
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(ProbeError):
        probe_clip(tmp_path / "junk.mp4")
