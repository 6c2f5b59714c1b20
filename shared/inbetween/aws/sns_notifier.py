"""Notifications on the deployment's SNS topic: the event as JSON, with attributes to filter on."""

from __future__ import annotations

import json
from typing import Any

from inbetween.domain.models import Notification


def sns_subject(notification: Notification) -> str:
    # SNS subjects must be printable ASCII without control characters, under 100 characters
    name = "".join(c if 32 <= ord(c) < 127 else "?" for c in notification.job_name)
    return f"inbetween: {name} {notification.status.value.lower()}"[:99]


class SnsNotifier:
    """``inbetween.ports.Notifier`` on one SNS topic."""

    def __init__(self, client: Any, topic_arn: str):
        self._sns = client
        self._topic_arn = topic_arn

    def publish(self, notification: Notification) -> None:
        attributes = {
            "event_type": notification.event_type,
            "status": notification.status.value,
            "model": notification.model or "unknown",
        }
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=sns_subject(notification),
            Message=json.dumps(
                {
                    "type": notification.event_type,
                    "timestamp": notification.timestamp,
                    "data": notification.data,
                }
            ),
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
