"""The DashScope Wan first-and-last-frame (kf2v) provider: HTTP client, typed shapes, pre-flight checks."""

# Names are imported from their modules on first use (PEP 562), so that importing a pure module of
# this package (its models, its schedule) does not load the HTTP client, and with it httpx.
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CreateTaskRequest": "inbetween.provider.models",
    "DEFAULT_TIMEOUT": "inbetween.provider.client",
    "DashScopeClient": "inbetween.provider.client",
    "ImageInfo": "inbetween.provider.validation",
    "LiveQuotas": "inbetween.provider.quotas",
    "ModelQuota": "inbetween.provider.models",
    "TaskPage": "inbetween.provider.models",
    "TaskRef": "inbetween.provider.models",
    "TaskState": "inbetween.provider.models",
    "TaskStatus": "inbetween.provider.models",
    "TaskSummary": "inbetween.provider.models",
    "Usage": "inbetween.provider.models",
    "data_uri": "inbetween.provider.validation",
    "inspect_image": "inbetween.provider.validation",
    "validate_request": "inbetween.provider.validation",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
