"""What a user can do about a provider's error code: the hint in error.json and the notifications."""

from __future__ import annotations

PROVIDER_HINTS = {
    "DataInspectionFailed": "the provider's content check refused the frames or prompt; change them and upload again",
    "IPInfringementSuspect": "the provider suspects copyrighted content; use frames you own",
    "InvalidApiKey": "the DashScope API key in Secrets Manager is wrong or for another region; fix it, "
    "then upload the folder again",
    "Arrearage": "the Alibaba Cloud account is overdue; settle the bill, then upload the folder again",
    "InvalidParameter": "the provider refused a parameter; check job.json against README.md",
}
DEFAULT_HINT = "check the inputs and upload the job folder again"


def provider_hint(code: str | None) -> str:
    return PROVIDER_HINTS.get(code or "", DEFAULT_HINT)
