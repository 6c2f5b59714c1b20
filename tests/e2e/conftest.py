"""One local stack (moto server + emulator + in-process functions) shared by the e2e tests of a worker.

The environment and the pipeline's cached settings are process-global, so a process runs one stack at a
time: every test that uses it is in the ``e2e-local-stack`` xdist group (one worker with
``--dist loadgroup``), and the stack stops after the last test of this folder, so that its threads
never run beside other folders' tests (whose moto mocks would intercept their calls).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from inbetween_local.stack import LocalStack

SAMPLES = Path(__file__).resolve().parents[2] / "local" / "inbetween_local" / "samples"

# Powertools warns when an invocation emits no metric; pytest makes warnings errors, and the handlers run
# in the stack's threads while a test runs.
STACK_MARKS = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e-local-stack"),
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]


@pytest.fixture(scope="package")
def _package_stack():
    # A provider task runs 1 s here (the stack's default, 2 s, is for watching `local up`): no test of this
    # folder looks at a task while it runs, and every job of theirs waits that long at least once.
    stack = LocalStack(poller_period_s=1.0, emulator_running_s=1.0)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack(_package_stack, monkeypatch):
    """The running stack, with its function environment in place for this test (the root conftest's
    fixtures reset AWS variables per test)."""
    for name, value in _package_stack.environment.items():
        monkeypatch.setenv(name, value)
    return _package_stack


@pytest.fixture(scope="package")
def notification_queue(_package_stack):
    """An SQS queue subscribed to the notification topic, as a subscriber would have."""
    return _package_stack.subscribe_queue("e2e-notifications")


def probe_mp4(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "codec": stream.codec_context.name,
            "duration_s": float(stream.duration * stream.time_base),
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
        }
