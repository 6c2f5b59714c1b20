"""The soundtrack builder on plain sample arrays (no codec): exact lengths, cuts, cross-fades."""

from __future__ import annotations

from array import array

import pytest
from inbetween_media.audio import SoundtrackBuilder, samples_per_frame

SPF = 1600  # 48 kHz / 30 fps


def _run(clips, frames, *, blend=0, declick_ms=0.0, at=None, chunk=1000):
    """Feed clips (lists of sample values, or None for no audio) and collect the film's left channel."""
    out = array("f")
    builder = SoundtrackBuilder(
        lambda left, right: out.extend(left),
        fps=30,
        clips=len(clips),
        seam_blend_frames=blend,
        declick_ms=declick_ms,
    )
    for k, (samples, n) in enumerate(zip(clips, frames, strict=True)):
        builder.start_clip(k)
        if samples is not None:
            data = array("f", samples)
            for i in range(0, len(data), chunk):
                part = data[i : i + chunk]
                builder.add(part, part, frames_seen=n, at=(at if i == 0 else None))
        builder.end_clip(n)
    assert builder.emitted == len(out)
    return out


def test_each_clip_is_cut_to_its_video_and_the_dropped_frame_loses_its_audio():
    a, b = [1.0] * (10 * SPF + 123), [2.0] * (8 * SPF - 50)  # too long, too short
    out = _run([a, b], [10, 8])
    assert len(out) == (10 + 8 - 1) * SPF
    assert set(out[: 9 * SPF]) == {1.0}
    assert set(out[9 * SPF : 9 * SPF + 8 * SPF - 50]) == {2.0}
    assert set(out[-50:]) == {0.0}  # padded with silence


def test_a_clip_without_audio_is_silence():
    out = _run([None, [0.5] * (5 * SPF)], [6, 5])
    assert len(out) == 10 * SPF
    assert set(out[: 5 * SPF]) == {0.0} and set(out[5 * SPF :]) == {0.5}


def test_the_first_timestamp_places_the_audio():
    late = _run([[1.0] * (5 * SPF)], [5], at=100)
    assert len(late) == 5 * SPF and set(late[:100]) == {0.0} and late[100] == 1.0
    early = _run([list(range(5 * SPF))], [5], at=-7)
    assert early[0] == 7.0 and len(early) == 5 * SPF


def test_a_blend_cross_fades_the_same_span_with_equal_power():
    f = 3
    out = _run([[1.0] * (10 * SPF), [-1.0] * (10 * SPF)], [10, 10], blend=f)
    assert len(out) == (20 - 1 - f) * SPF
    start = (10 - 1 - f) * SPF
    window = out[start : start + f * SPF]
    assert out[start - 1] == 1.0 and out[start + f * SPF] == -1.0
    assert window[0] == pytest.approx(1.0, abs=1e-3) and window[-1] == pytest.approx(-1.0, abs=1e-3)
    assert window[len(window) // 2] == pytest.approx(0.0, abs=1e-3)  # cos - sin at the middle


def test_a_hard_cut_is_declicked_on_both_sides():
    out = _run([[1.0] * (4 * SPF), [1.0] * (4 * SPF)], [4, 4], declick_ms=5.0)
    cut, d = 3 * SPF, 240
    assert len(out) == 7 * SPF
    assert out[cut - d - 1] == 1.0 and out[cut - 1] < 0.01 and out[cut] < 0.01 and out[cut + d] == 1.0


def test_frame_rates_that_do_not_divide_48khz_are_refused():
    assert samples_per_frame(16) == 3000
    with pytest.raises(ValueError, match="7 fps"):
        samples_per_frame(7)
