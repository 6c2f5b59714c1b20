"""Which host the provider client talks to: the region's shared host, its workspace host, or a given URL."""

from __future__ import annotations

import pytest
from inbetween.config import load_settings
from inbetween.errors import ConfigError
from inbetween.provider import DashScopeClient
from provider_fakes import FAKE_KEY

ENV = {
    "JOBS_TABLE": "t",
    "INBOX_BUCKET": "i",
    "OUTPUT_BUCKET": "o",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
    "INTAKE_QUEUE_URL": "q1",
    "COMPLETION_QUEUE_URL": "q2",
    "DASHSCOPE_API_KEY_SECRET": "s1",
    "WEBHOOK_SECRET_NAME": "s2",
}


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("cn-beijing", "https://llm-7f3a.cn-beijing.maas.aliyuncs.com/api/v1"),
        ("ap-southeast-1", "https://llm-7f3a.ap-southeast-1.maas.aliyuncs.com/api/v1"),
    ],
)
def test_a_workspace_id_selects_the_regions_workspace_host(region, host):
    settings = load_settings(dict(ENV, PROVIDER_REGION=region, WORKSPACE_ID="llm-7f3a"))
    assert (settings.provider_base_url, settings.workspace_id) == (host, "llm-7f3a")
    client = DashScopeClient.for_region(region, FAKE_KEY, workspace_id="llm-7f3a")
    assert client.base_url == host
    client.close()


def test_without_a_workspace_the_shared_host_and_a_given_url_still_wins():
    assert load_settings(ENV).provider_base_url == "https://dashscope.aliyuncs.com/api/v1"
    assert load_settings(dict(ENV, WORKSPACE_ID="")).workspace_id == ""
    local = load_settings(dict(ENV, WORKSPACE_ID="llm-7f3a", PROVIDER_BASE_URL="http://127.0.0.1:9/api/v1"))
    assert local.provider_base_url == "http://127.0.0.1:9/api/v1"


def test_a_workspace_id_that_cannot_be_a_host_is_refused():
    with pytest.raises(ConfigError) as caught:
        load_settings(dict(ENV, WORKSPACE_ID="a.b/c"))
    assert "cannot be a host name" in str(caught.value)
    with pytest.raises(ConfigError):
        DashScopeClient.for_region("mars-1", FAKE_KEY, workspace_id="llm-7f3a")
