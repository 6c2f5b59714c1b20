"""Secrets Manager reads, cached per container. Values never reach a log line or an error message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from inbetween.errors import ConfigError


class SecretReader:
    def __init__(self, client: Any, *, max_age_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._max_age = max_age_s
        self._clock = clock
        self._cache: dict[str, tuple[float, str]] = {}

    def __repr__(self) -> str:
        return f"SecretReader(cached={len(self._cache)})"

    def get(self, secret_id: str) -> str:
        hit = self._cache.get(secret_id)
        if hit and self._clock() - hit[0] < self._max_age:
            return hit[1]
        try:
            resp = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            raise ConfigError(
                f"could not read secret {secret_id!r} ({code}); put a value in it with "
                f"'aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string ...'"
            ) from None
        value = resp.get("SecretString") or ""
        if not value.strip():
            raise ConfigError(f"secret {secret_id!r} is empty; put a value in it")
        self._cache[secret_id] = (self._clock(), value.strip())
        return value.strip()


def webhook_secret_value(raw: str) -> str:
    """Standard Webhooks secrets are ``whsec_`` + base64; the template generates the base64 part."""
    return raw if raw.startswith("whsec_") else f"whsec_{raw}"
