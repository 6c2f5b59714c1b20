"""template.yaml's side of webhook operations: the deployment's event filter (a parameter the settings
accept), and the alarm on a paused webhook endpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.decode import decode_str
from inbetween.config import parse_webhook_events
from inbetween.errors import ConfigError

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    parsed, errors = decode_str(TEMPLATE_PATH.read_text())
    assert not errors, errors
    return parsed


def test_every_function_gets_the_deployments_webhook_events(template):
    param = template["Parameters"]["WebhookEvents"]
    assert param["Default"] == "*"
    assert template["Globals"]["Function"]["Environment"]["Variables"]["WEBHOOK_EVENTS"] == {
        "Ref": "WebhookEvents"
    }
    assert parse_webhook_events(param["Default"]) == ("*",)


@pytest.mark.parametrize(
    ("value", "deployable"),
    [
        ("video.generation.*,budget.reached", True),
        ("video.generation.failed , film.*", True),
        ("Video.Generation.Failed", False),
        ("video.generation.failed;", False),
        ("", False),
    ],
)
def test_the_parameters_pattern_refuses_at_deploy_time_what_the_settings_refuse(template, value, deployable):
    pattern = template["Parameters"]["WebhookEvents"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is deployable
    if not deployable and value:
        with pytest.raises(ConfigError):
            parse_webhook_events(value)


def test_a_paused_webhook_endpoint_raises_an_alarm(template):
    alarm = template["Resources"]["WebhookEndpointPausedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Inbetween", "WebhookEndpointsPaused")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "inbetween"}]
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Sum",
        "GreaterThanThreshold",
        0,
    )
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
