"""Fixtures for the emulator tests: an emulator on a manual clock, a real-time one, a keyframe host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_helpers import API_KEY, BLUE, GREEN, RED, Api, FrameHost, image_bytes
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults, ManualClock
from media_helpers import clip, tone


@pytest.fixture(scope="module")
def frames() -> Iterator[FrameHost]:
    host = FrameHost()
    host.add("red.png", image_bytes(RED))
    host.add("blue.png", image_bytes(BLUE))
    yield host
    host.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emulator(clock) -> Iterator[EmulatorServer]:
    """Manual clock, PENDING 1 s then RUNNING 2 s; quotas off unless a test turns them on."""
    config = EmulatorConfig(
        api_keys=(API_KEY,),
        clock=clock,
        pending_s=1.0,
        running_s=2.0,
        faults=Faults(rate_limits_enabled=False, concurrency_limits_enabled=False),
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def api(emulator) -> Iterator[Api]:
    client = Api(emulator.base_url)
    yield client
    client.close()


@pytest.fixture
def flash_body(frames):
    def make(**parameters):
        return {
            "model": "wan2.2-kf2v-flash",
            "input": {
                "first_frame_url": frames.url("red.png"),
                "last_frame_url": frames.url("blue.png"),
                "prompt": "A red card turns blue.",
            },
            "parameters": {"resolution": "480P", **parameters},
        }

    return make


@pytest.fixture(scope="module")
def media() -> Iterator[FrameHost]:
    """wan2.7 inputs on loopback: frames, driving audio (wav/mp3), first clips (mp4/mov)."""
    host = FrameHost()
    host.add("red.png", image_bytes(RED))
    host.add("blue.png", image_bytes(BLUE))
    host.add("tone-3s.wav", tone(3, 1000))
    host.add("tone-12s.mp3", tone(12, 1000, "mp3", rate=24_000))
    host.add("clip-2s.mp4", clip([RED, GREEN]))
    host.add("clip-2s.mov", clip([GREEN, RED], fmt="mov"))
    yield host
    host.close()


@pytest.fixture
def wan27_body(media):
    """A wan2.7 create body: ``wan27_body("first_frame", "last_frame", duration=3)``; items name the
    media types, each with a default file of the ``media`` host (or ``type=url`` pairs as tuples)."""
    defaults = {
        "first_frame": "red.png",
        "last_frame": "blue.png",
        "driving_audio": "tone-3s.wav",
        "first_clip": "clip-2s.mp4",
    }

    def make(*items, model: str = "wan2.7-i2v", prompt: str = "A red card turns blue.", **parameters):
        entries = []
        for item in items or ("first_frame", "last_frame"):
            kind, url = item if isinstance(item, tuple) else (item, media.url(defaults[item]))
            entries.append({"type": kind, "url": url})
        return {
            "model": model,
            "input": {"prompt": prompt, "media": entries},
            "parameters": {"resolution": "720P", **parameters},
        }

    return make
