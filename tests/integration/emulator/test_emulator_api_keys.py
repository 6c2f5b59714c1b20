"""Submit lanes against the emulator: our client creates with the key a lane names, and the task list's
``api_key_id`` filter (the one reconciliation of a lane uses) returns that key's tasks alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from inbetween.provider import CreateTaskRequest, DashScopeClient
from inbetween.provider.client import api_key_ref
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults, ManualClock

KEYS = ("sk-lane-one-000000000001", "sk-lane-two-000000000002")


@pytest.fixture
def two_key_emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_keys=KEYS,
        clock=ManualClock(),
        pending_s=1.0,
        running_s=2.0,
        faults=Faults(rate_limits_enabled=False, concurrency_limits_enabled=False),
    )
    with EmulatorServer(config) as server:
        yield server


def test_each_lanes_creates_carry_its_key_and_the_list_filters_by_it(two_key_emulator, frames):
    client = DashScopeClient("\n".join(KEYS), two_key_emulator.base_url)
    request = CreateTaskRequest(
        model="wan2.2-kf2v-flash",
        first_frame_url=frames.url("red.png"),
        last_frame_url=frames.url("blue.png"),
        prompt="A red card turns blue.",
    )
    first = client.create_task(request).task_id  # no lane named: the first key
    second = client.create_task(request, key_ref=api_key_ref(KEYS[1])).task_id
    key_ids = [two_key_emulator.tasks[t].api_key_id for t in (first, second)]
    assert key_ids[0] != key_ids[1]
    everyone = list(client.iter_tasks(model="wan2.2-kf2v-flash"))
    assert {t.task_id for t in everyone} == {first, second}
    assert {t.task_id: t.api_key_id for t in everyone} == dict(zip((first, second), key_ids, strict=True))
    only_second = list(client.iter_tasks(model="wan2.2-kf2v-flash", api_key_id=key_ids[1]))
    assert [t.task_id for t in only_second] == [second]
    # any key of the account reads any task (S7): the lane's key is needed for its creates only
    assert client.get_task(second).task_id == second
    client.close()
