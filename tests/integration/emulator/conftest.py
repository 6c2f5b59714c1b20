"""Fixtures for the emulator tests: an emulator on a manual clock, a real-time one, a keyframe host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_helpers import API_KEY, BLUE, RED, Api, FrameHost, image_bytes
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults, ManualClock


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
