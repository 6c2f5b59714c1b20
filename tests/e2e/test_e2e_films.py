"""A storyboard through the local stack (issue 15, "Done when"): six numbered keyframes uploaded in any
order, as `aws s3 sync` lands them, become one film.mp4 of five shots, checked here from the bytes and
not from the code under test: its frame count and duration, every seam frame against its keyframe, no
repeated frame at a seam, a poster and a contact sheet, and one film.succeeded webhook that the
standardwebhooks package verifies. Then keyframe 4 changes: exactly two new provider tasks, a new film.
"""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from inbetween_local.receiver import WebhookReceiver
from PIL import Image
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import STACK_MARKS

pytestmark = [*STACK_MARKS, pytest.mark.timeout(420)]

FILM = "e2e-harbour"
FPS, SHOT_S, SHOTS = 30, 2, 5
CLIP_FRAMES = FPS * SHOT_S
COLOURS = [(220, 60, 60), (60, 200, 60), (60, 60, 220), (220, 200, 60), (60, 200, 200), (200, 60, 200)]
FILM_TIMEOUT_S = 240
# a seam frame is its keyframe, fitted to the film's size and encoded: mean absolute difference of the
# two as 64-pixel-wide grayscale, at most this; and two neighbours at a seam differ by more than the other
SEAM_MATCH_MAX = 8.0
STILL_MAX = 0.1


def _png(colour: tuple[int, int, int], marker: int = 0) -> bytes:
    image = Image.new("RGB", (320, 240), colour)
    for x in range(0, 320, 8):  # a pattern, so that a seam's match is not a flat colour's
        for y in range(0, 240, 40):
            image.putpixel((x, (y + x * 3 + marker) % 240), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _gray(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    fitted = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(fitted.convert("L").resize((64, 48), Image.Resampling.BOX), dtype=np.float64)


def _sync(s3: Any, bucket: str, files: dict[str, bytes], seed: int) -> None:
    names = list(files)
    random.Random(seed).shuffle(names)  # `aws s3 sync` lands files in any order
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"inbox/{FILM}/{name}", Body=files[name])


def _film_runs(stack: Any) -> list[dict[str, Any]]:
    table = stack.boto3_session().resource("dynamodb").Table(stack.table_name)
    items = table.scan(ConsistentRead=True)["Items"]
    runs = [i for i in items if str(i["pk"]).startswith(f"film#{FILM}/")]
    return sorted(runs, key=lambda item: float(item["created_at"]))


def _wait_for_runs(stack: Any, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + FILM_TIMEOUT_S
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _film_runs(stack)
        if len(runs) >= count and all(r["status"] in ("STORED", "FAILED", "REJECTED") for r in runs):
            if all(r.get("notified_at") for r in runs):
                return runs
        time.sleep(0.5)
    raise TimeoutError(f"film runs after {FILM_TIMEOUT_S} s: {[r['status'] for r in runs]}")


def _decoded(path: Path) -> tuple[list[np.ndarray], tuple[int, int], float, bool]:
    """Every frame as small grayscale, the frame size, the video's duration and whether it has sound."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        frames = [_gray(frame.to_image(), size) for frame in container.decode(stream)]
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        return frames, size, duration, bool(container.streams.audio)


@pytest.fixture
def receiver(stack):
    with WebhookReceiver(stack.webhook_secret) as receiver:
        yield receiver


def test_six_keyframes_become_one_seamless_film_and_a_changed_keyframe_remakes_two_shots(
    stack, receiver, tmp_path
):
    s3 = stack.client("s3")
    keyframes = {f"{i:02d}.png": _png(c) for i, c in enumerate(COLOURS, start=1)}
    film_json = {
        "model": "wan2.7-i2v",
        "resolution": "720P",
        "defaults": {"duration": SHOT_S, "prompt": "the tide comes in"},
        "webhook_url": receiver.url,
    }
    creates_before = stack.emulator.stats.creates_accepted

    # Given six numbered keyframes and a film.json synced into the inbox, in any order
    _sync(s3, stack.inbox_bucket, {**keyframes, "film.json": json.dumps(film_json).encode()}, seed=7)

    # When the pipeline has made it
    (run,) = _wait_for_runs(stack, 1)

    # Then one film of five shots: their frames less one per seam, 30 fps, with sound
    assert run["status"] == "STORED", run.get("error")
    assert stack.emulator.stats.creates_accepted - creates_before == SHOTS
    video = tmp_path / "film.mp4"
    s3.download_file(stack.output_bucket, run["video_key"], str(video))
    frames, size, duration, has_audio = _decoded(video)
    expected = SHOTS * CLIP_FRAMES - (SHOTS - 1)
    assert len(frames) == expected
    assert duration == pytest.approx(expected / FPS, abs=1.5 / FPS)
    assert has_audio
    # every seam frame (and the first and the last) is its keyframe; no frame repeated at a seam
    seam_index = {k: k * (CLIP_FRAMES - 1) for k in range(SHOTS + 1)}  # keyframe k+1's film frame
    for k, index in seam_index.items():
        keyframe = _gray(Image.open(io.BytesIO(keyframes[f"{k + 1:02d}.png"])), size)
        distance = float(np.abs(frames[index] - keyframe).mean())
        assert distance <= SEAM_MATCH_MAX, f"frame {index} vs keyframe {k + 1}: {distance:.2f}"
        if 0 < k < SHOTS:
            for a, b in ((index - 1, index), (index, index + 1)):
                assert float(np.abs(frames[a] - frames[b]).mean()) > STILL_MAX, f"frames {a}, {b} repeat"
    # and its poster and contact sheet beside it
    prefix = run["video_key"].rsplit("/", 1)[0]
    poster = s3.get_object(Bucket=stack.output_bucket, Key=f"{prefix}/poster.jpg")["Body"].read()
    sheet = s3.get_object(Bucket=stack.output_bucket, Key=f"{prefix}/contact-sheet.png")["Body"].read()
    assert Image.open(io.BytesIO(poster)).format == "JPEG"
    assert Image.open(io.BytesIO(sheet)).format == "PNG"

    # And one film.succeeded webhook, verified, naming every shot (no per-shot events: not asked for)
    event = receiver.wait_for_event(30, lambda e: e.payload["type"].startswith("film."))
    Webhook(stack.webhook_secret).verify(event.body, event.headers)
    assert event.payload["type"] == "film.succeeded"
    data = event.payload["data"]
    assert data["film_video"]["frames"] == expected
    assert [s["keyframes"] for s in data["shots"]] == [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]
    assert {"poster_url", "contact_sheet_url"} <= set(data)

    # When keyframe 4 changes and the folder is synced again (only the changed file is uploaded)
    creates_before = stack.emulator.stats.creates_accepted
    _sync(s3, stack.inbox_bucket, {"04.png": _png(COLOURS[3], marker=5)}, seed=8)
    runs = _wait_for_runs(stack, 2)

    # Then exactly two new provider tasks (shots 3->4 and 4->5), and a new film; the other three reused
    assert stack.emulator.stats.creates_accepted - creates_before == 2
    assert runs[-1]["status"] == "STORED" and runs[-1]["video_key"] != run["video_key"]
    time.sleep(1.0)  # a duplicate announcement would be on its way by now
    film_events = [e for e in receiver.events if e.payload["type"].startswith("film.")]
    assert [e.payload["type"] for e in film_events] == ["film.succeeded", "film.succeeded"]
    assert receiver.rejected == []
