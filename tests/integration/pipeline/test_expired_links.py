"""A video link that expired before we copied it ends the job EXPIRED, with a clear reason."""

from __future__ import annotations

import pytest
from inbetween_local.emulator import EmulatorConfig
from pipeline_kit import API_KEY


@pytest.fixture
def emulator_config():
    # every video link the provider hands out has already expired
    return EmulatorConfig(api_keys=(API_KEY,), pending_s=0.1, running_s=0.3, video_url_ttl_s=0.0)


def test_a_video_link_that_expired_before_it_was_copied_ends_the_job_expired(pipeline, pair):
    pipeline.drop("late-copy", pair)
    item = pipeline.run_until_final("late-copy")
    assert item["status"] == "EXPIRED"
    assert item["error"]["code"] == "VideoLinkExpired"
    report = pipeline.read_json(pipeline.settings.inbox_bucket, "inbox/late-copy/error.json")
    assert "upload the job folder again" in report["what_to_do"]
    notes = pipeline.notifications()
    assert [n["attributes"]["status"] for n in notes] == ["EXPIRED"]
