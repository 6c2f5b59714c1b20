"""wan2.7-i2v drops through the local stack (issue 14, "Done when"): first and last frame with a duration
and 1080P, the same with a driving audio, and a continuation of a first clip. Each ends STORED with a
video of the asked duration at 30 fps with sound, sized by the size rule, and metadata.json and the SNS
notification carry the duration, the audio source and the usage.

The three folders are dropped at once (one module fixture), so the emulator renders them side by side;
each test then waits for its own job. The frames are small (320x240): the output is the tier's size
regardless, the inputs only set its aspect.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from inbetween.domain.catalog import RESOLUTION_PIXELS
from PIL import Image

from tests.e2e.conftest import STACK_MARKS

pytestmark = STACK_MARKS

WAN27 = "wan2.7-i2v"
FPS = 30
FRAME = (320, 240)
RED, BLUE, GREEN = (220, 40, 40), (40, 60, 220), (40, 200, 60)
DRIVING_HZ = 880.0  # the emulator's own soundtrack is a 440 Hz tone: this one is told apart
DRIVING_S = 3.0
CLIP_S = 3.0
CLIP = (480, 240)  # 2:1, unlike the 4:3 last frame: the video's aspect shows which one it follows
JOB_TIMEOUT_S = 90


def _png(color: tuple[int, int, int], size: tuple[int, int] = FRAME) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _tone_mp3(path: Path, hz: float, seconds: float, rate: int = 44100) -> bytes:
    """A sine tone of ``hz`` (media_fakes.write_audio writes 440 Hz only, the emulator's own tone)."""
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        total = round(seconds * rate)
        tone = (np.sin(2 * np.pi * hz * np.arange(total) / rate) * 12000).astype(np.int16)
        for start in range(0, total, 1152):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1152], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def _solid_mp4(
    path: Path, color: tuple[int, int, int], seconds: float, size: tuple[int, int] = FRAME
) -> bytes:
    """An H.264 clip of one colour (media_fakes.write_video draws a changing green ramp)."""
    width, height = size
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        picture = np.empty((height, width, 3), np.uint8)
        picture[:] = color
        for _ in range(round(seconds * 10)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def _size_rule(width: int, height: int, resolution: str) -> tuple[int, int]:
    """The documented output size (README: the input's aspect, the tier's pixel count, each side rounded
    down to a multiple of 16), computed here rather than taken from the code under test."""
    scale = math.sqrt(RESOLUTION_PIXELS[resolution] / (width * height))
    return int(width * scale) // 16 * 16, int(height * scale) // 16 * 16


# --- the drops ---------------------------------------------------------------------------------------

CASES: dict[str, dict[str, Any]] = {
    "e2e-wan27-pair": {"job": {"model": WAN27, "duration": 10, "resolution": "1080P"}},
    "e2e-wan27-audio": {"job": {"model": WAN27, "resolution": "720P"}},
    "e2e-wan27-clip": {"job": {"model": WAN27, "duration": 6}},
}


@dataclass
class Notifications:
    """The SNS envelopes of the subscribed queue, kept by job id (the three tests read one queue)."""

    stack: Any
    queue_url: str
    by_job: dict[str, list[dict[str, Any]]]

    def of(self, job_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and job_id not in self.by_job:
            self._read()
        self._read()  # a second one would be here by now
        return self.by_job.get(job_id, [])

    def _read(self) -> None:
        for envelope in self.stack.notifications(self.queue_url):
            job_id = json.loads(envelope["Message"])["data"].get("job_id")
            if job_id:  # the shared queue also has films' events (film.succeeded names a film run)
                self.by_job.setdefault(job_id, []).append(envelope)


@pytest.fixture(scope="module")
def drops(_package_stack, notification_queue, tmp_path_factory):
    """Upload the three folders at once, job.json first (each folder settles before it is looked at;
    SETTLE_SECONDS is 1 locally, and a wan2.7 first frame alone would already be a task)."""
    stack = _package_stack
    folder = tmp_path_factory.mktemp("wan27-drops")
    files = {
        "e2e-wan27-pair": {"first.png": _png(RED), "last.png": _png(BLUE)},
        "e2e-wan27-audio": {
            "first.png": _png(RED),
            "last.png": _png(BLUE),
            "audio.mp3": _tone_mp3(folder / "tone.mp3", DRIVING_HZ, DRIVING_S),
        },
        "e2e-wan27-clip": {
            "first_clip.mp4": _solid_mp4(folder / "clip.mp4", GREEN, CLIP_S, CLIP),
            "last.png": _png(BLUE),
        },
    }
    s3 = stack.client("s3")
    for name, case in CASES.items():
        for filename, data in {"job.json": json.dumps(case["job"]).encode(), **files[name]}.items():
            s3.put_object(Bucket=stack.inbox_bucket, Key=f"inbox/{name}/{filename}", Body=data)
    return Notifications(stack, notification_queue, {})


def _stored(stack, name: str, tmp_path: Path) -> tuple[Any, Path, dict[str, Any]]:
    """Wait for the job; its video downloaded and its metadata.json."""
    job = stack.wait_for_job(name, timeout=JOB_TIMEOUT_S)
    assert job.status.value == "STORED", job.error
    s3 = stack.client("s3")
    video = tmp_path / "video.mp4"
    s3.download_file(stack.output_bucket, job.video_key, str(video))
    key = f"results/{name}/{job.run_id}/metadata.json"
    metadata = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=key)["Body"].read())
    return job, video, metadata


@dataclass
class Probe:
    duration_s: float
    frames: int
    fps: Fraction
    width: int
    height: int
    has_audio: bool


def _probe(path: Path) -> Probe:
    """The stream facts, counting the video packets without decoding them (a 1080P 10 s video)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for packet in container.demux(video) if packet.size)
        return Probe(
            duration_s=float(video.duration * video.time_base),
            frames=frames,
            fps=video.average_rate,
            width=video.codec_context.width,
            height=video.codec_context.height,
            has_audio=bool(container.streams.audio),
        )


def _audio(path: Path) -> tuple[np.ndarray, int]:
    """The video's soundtrack as mono float samples, and their rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in [*container.decode(stream), None]
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks), rate


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _colours_at(path: Path, times: list[float]) -> list[np.ndarray]:
    """The mean RGB of the centre of the first frame shown at or after each time."""
    wanted = sorted(times)
    found: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            if not wanted:
                break
            if frame.time is not None and frame.time + 1e-6 >= wanted[0]:
                picture = frame.to_ndarray(format="rgb24")
                h, w = picture.shape[:2]
                found.append(picture[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].reshape(-1, 3).mean(axis=0))
                wanted.pop(0)
    assert not wanted, f"no frame at {wanted}"
    return found


def _check_facts(
    job, metadata: dict[str, Any], notification: dict[str, Any], *, seconds: int, soundtrack: str
):
    """metadata.json and the notification say the same length, audio source and bill."""
    for where, facts in (("metadata.json", metadata), ("notification", notification["data"])):
        assert facts["job_id"] == job.job_id, where
        assert facts["model"] == WAN27, where
        assert facts["duration_s"] == seconds, where
        assert facts["soundtrack"] == soundtrack, where
        assert facts["usage"]["duration"] == seconds, (where, facts["usage"])
        assert facts["billed_seconds"] == seconds, where


def _one_notification(drops: Notifications, job) -> dict[str, Any]:
    envelopes = drops.of(job.job_id)
    assert len(envelopes) == 1, envelopes
    [envelope] = envelopes
    assert envelope["MessageAttributes"]["status"]["Value"] == "STORED"
    message = json.loads(envelope["Message"])
    assert message["type"] == "video.generation.succeeded"
    return message


# --- the cases ---------------------------------------------------------------------------------------


def test_a_first_and_last_frame_drop_of_10_seconds_at_1080p_is_stored_with_a_generated_soundtrack(
    stack, drops, tmp_path
):
    job, video, metadata = _stored(stack, "e2e-wan27-pair", tmp_path)
    probe = _probe(video)
    # a 10 s video (within one frame), 30 fps, with sound, of the size rule's width and height
    assert probe.duration_s == pytest.approx(10.0, abs=1 / FPS)
    assert abs(probe.frames - 10 * FPS) <= 1
    assert probe.fps == FPS
    assert probe.has_audio
    assert (probe.width, probe.height) == _size_rule(*FRAME, "1080P") == tuple(job.expected_size)
    assert metadata["size"] == {"width": probe.width, "height": probe.height}
    # the soundtrack is the model's own (the emulator's 440 Hz tone) throughout
    samples, rate = _audio(video)
    assert len(samples) / rate == pytest.approx(10.0, abs=0.1)
    assert _dominant_hz(samples[rate : 3 * rate], rate) == pytest.approx(440, abs=10)
    notification = _one_notification(drops, job)
    assert notification["data"]["video"]["width"] == probe.width
    _check_facts(job, metadata, notification, seconds=10, soundtrack="generated")


def test_a_drop_with_audio_mp3_has_that_audio_as_its_soundtrack(stack, drops, tmp_path):
    job, video, metadata = _stored(stack, "e2e-wan27-audio", tmp_path)
    probe = _probe(video)
    # the model's default length (5 s), longer than the 3 s audio
    assert probe.duration_s == pytest.approx(5.0, abs=1 / FPS)
    assert probe.fps == FPS and probe.has_audio
    assert (probe.width, probe.height) == _size_rule(*FRAME, "720P") == tuple(job.expected_size)
    samples, rate = _audio(video)
    # the driving audio's tone in its first seconds, near silence once it has ended
    head = samples[int(0.5 * rate) : int(2.5 * rate)]
    tail = samples[int((DRIVING_S + 0.3) * rate) : int(4.8 * rate)]
    assert _dominant_hz(head, rate) == pytest.approx(DRIVING_HZ, abs=10)
    assert _rms(head) > 0.05
    assert _rms(tail) < 0.01 * _rms(head), (_rms(tail), _rms(head))
    _check_facts(job, metadata, _one_notification(drops, job), seconds=5, soundtrack="driving_audio")


def test_a_first_clip_and_a_last_frame_make_a_continuation_that_starts_with_the_clip(stack, drops, tmp_path):
    job, video, metadata = _stored(stack, "e2e-wan27-clip", tmp_path)
    probe = _probe(video)
    # 6 s in all, the clip's 3 s included
    assert probe.duration_s == pytest.approx(6.0, abs=1 / FPS)
    assert probe.fps == FPS and probe.has_audio
    # the deployment's default resolution at the clip's aspect (not the last frame's)
    assert (probe.width, probe.height) == _size_rule(*CLIP, job.spec.resolution) == tuple(job.expected_size)
    # its first seconds are the clip; it ends on the last frame
    *clip_part, end = _colours_at(video, [0.2, 1.5, 2.8, 5.95])
    for colour in clip_part:
        assert np.abs(colour - GREEN).max() < 20, colour
    assert np.abs(end - BLUE).max() < 20, end
    # billed on the whole length, the clip included (A1 §3.3)
    notification = _one_notification(drops, job)
    _check_facts(job, metadata, notification, seconds=6, soundtrack="generated")
    for facts in (metadata, notification["data"]):
        assert facts["usage"]["input_video_duration"] == CLIP_S
