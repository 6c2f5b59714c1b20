"""The DashScope Wan first-and-last-frame (kf2v) provider: HTTP client, typed shapes, pre-flight checks."""

from inbetween.provider.client import DEFAULT_TIMEOUT, DashScopeClient
from inbetween.provider.models import (
    CreateTaskRequest,
    TaskPage,
    TaskRef,
    TaskState,
    TaskStatus,
    TaskSummary,
    Usage,
)
from inbetween.provider.validation import ImageInfo, data_uri, inspect_image, validate_request

__all__ = [
    "DEFAULT_TIMEOUT",
    "CreateTaskRequest",
    "DashScopeClient",
    "ImageInfo",
    "TaskPage",
    "TaskRef",
    "TaskState",
    "TaskStatus",
    "TaskSummary",
    "Usage",
    "data_uri",
    "inspect_image",
    "validate_request",
]
