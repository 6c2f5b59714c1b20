"""Typed models of the pipeline: job states, the job spec a user drops, and the job record."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    WAITING = "WAITING"  # accepted, waiting for a provider slot (arrival order)
    SUBMITTING = "SUBMITTING"  # a worker holds the lease and is creating the provider task
    SUBMITTED = "SUBMITTED"  # the provider has the task (PENDING or RUNNING there)
    COMPLETING = "COMPLETING"  # the task succeeded; the video is being copied
    STORED = "STORED"  # final: the video is in the output bucket
    REJECTED = "REJECTED"  # final: the drop was invalid (ours or the provider's validation)
    FAILED = "FAILED"  # final: the provider task failed or was cancelled
    EXPIRED = "EXPIRED"  # final: the task or its video link outlived the provider's 24 hours

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.STORED, JobStatus.REJECTED, JobStatus.FAILED, JobStatus.EXPIRED})


class DueKind(StrEnum):
    """What the poller must do with an item whose ``due_at`` has passed (one sparse index for all)."""

    ADMIT = "admit"  # WAITING job, ordered by arrival; the key is per model: admit#<model>
    LEASE = "lease"  # SUBMITTING job whose lease ran out: reconcile with the provider's task list
    POLL = "poll"  # SUBMITTED job: query its task
    COMPLETE = "complete"  # COMPLETING job whose completion did not finish: hand it over again
    NOTIFY = "notify"  # final job whose notification is not confirmed
    SETTLE = "settle"  # incomplete drop folder: reject it if still incomplete
    WEBHOOK = "webhook"  # webhook delivery attempt due

    def key(self, model: str | None = None) -> str:
        return f"{self.value}#{model}" if self is DueKind.ADMIT else self.value


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    message: str
    hint: str = ""
    retryable: bool = False
    provider_request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ErrorInfo | None:
        if not data:
            return None
        return cls(
            code=str(data.get("code", "Unknown")),
            message=str(data.get("message", "")),
            hint=str(data.get("hint", "")),
            retryable=bool(data.get("retryable", False)),
            provider_request_id=data.get("provider_request_id"),
        )


@dataclass(frozen=True, slots=True)
class InputObject:
    key: str
    etag: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "etag": self.etag, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputObject:
        return cls(key=data["key"], etag=data["etag"], size=int(data["size"]))


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the user asked for, validated: job.json (or prompt.txt) merged over the deployment defaults."""

    model: str
    resolution: str
    prompt: str | None = None
    negative_prompt: str | None = None
    prompt_extend: bool = True
    watermark: bool = False
    seed: int | None = None
    template: str | None = None
    webhook_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        seed = data.get("seed")
        return cls(
            model=data["model"],
            resolution=data["resolution"],
            prompt=data.get("prompt"),
            negative_prompt=data.get("negative_prompt"),
            prompt_extend=bool(data.get("prompt_extend", True)),
            watermark=bool(data.get("watermark", False)),
            seed=int(seed) if seed is not None else None,
            template=data.get("template"),
            webhook_url=data.get("webhook_url"),
        )


def _plain(value: Any) -> Any:
    """DynamoDB returns numbers as Decimal; turn them back into int/float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    job_name: str
    run_id: str
    status: JobStatus
    spec: JobSpec | None
    inputs: dict[str, InputObject]
    created_at: float
    updated_at: float
    task_id: str | None = None
    provider_status: str | None = None
    submit_started_at: float | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    video_url: str | None = None
    video_key: str | None = None
    video_bytes: int | None = None
    expected_size: tuple[int, int] | None = None
    provider: dict[str, Any] = field(default_factory=dict)  # times, prompts, usage as the provider gave them
    error: ErrorInfo | None = None
    notified_at: float | None = None
    polls: int = 0

    @property
    def model(self) -> str | None:
        return self.spec.model if self.spec else None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        item = _plain(item)
        size = item.get("expected_size")
        return cls(
            job_id=item["job_id"],
            job_name=item["job_name"],
            run_id=item["run_id"],
            status=JobStatus(item["status"]),
            spec=JobSpec.from_dict(item["spec"]) if item.get("spec") else None,
            inputs={k: InputObject.from_dict(v) for k, v in (item.get("inputs") or {}).items()},
            created_at=float(item["created_at"]),
            updated_at=float(item["updated_at"]),
            task_id=item.get("task_id"),
            provider_status=item.get("provider_status"),
            submit_started_at=item.get("submit_started_at"),
            submitted_at=item.get("submitted_at"),
            finished_at=item.get("finished_at"),
            video_url=item.get("video_url"),
            video_key=item.get("video_key"),
            video_bytes=item.get("video_bytes"),
            expected_size=(int(size[0]), int(size[1])) if size else None,
            provider=item.get("provider") or {},
            error=ErrorInfo.from_dict(item.get("error")),
            notified_at=item.get("notified_at"),
            polls=int(item.get("polls", 0)),
        )


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
