"""The drop-folder convention: which S3 keys make a job, what job.json may say, and a job's identity.

    inbox/<job-name>/first.<ext>       the first frame (an image)
    inbox/<job-name>/last.<ext>        the last frame (an image)
    inbox/<job-name>/audio.<ext>       wan2.7: the driving audio (wav or mp3)
    inbox/<job-name>/first_clip.<ext>  wan2.7: a clip to continue (mp4 or mov)
    inbox/<job-name>/job.json          optional: prompt, model, resolution, duration, template, ...
    inbox/<job-name>/prompt.txt        optional: the prompt as plain text (job.json's prompt wins)

Which inputs a job needs is the model's (``ModelSpec.media_sets`` in the catalog): kf2v takes a first
and a last frame (or a first frame and an effect template); wan2.7 also a first frame alone, a driving
audio beside the frames, or a first clip (optionally ending on a last frame).

Anything else in the folder (error.json that we write, .DS_Store, notes) is ignored, and so is any key
outside ``inbox/<job-name>/<file>``. A job's identity is the folder name plus the ETags of its
convention files: a duplicate event maps to the same job, a changed re-upload to a new run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from inbetween.domain.catalog import MODELS, model_spec
from inbetween.domain.models import JobSpec
from inbetween.domain.webhook_events import parse_event_filter
from inbetween.errors import InvalidJob

# the input files, by the stem of their name: the role they play in the provider's request
INPUT_NAMES = ("first", "last", "audio", "first_clip")
JOB_JSON = "job.json"
PROMPT_TXT = "prompt.txt"
MAX_JOB_NAME_BYTES = 200
MAX_JOB_JSON_BYTES = 64 * 1024
MAX_PROMPT_TXT_BYTES = 64 * 1024

JOB_FIELDS: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "negative_prompt": (str,),
    "model": (str,),
    "resolution": (str,),
    "prompt_extend": (bool,),
    "watermark": (bool,),
    "seed": (int,),
    "template": (str,),
    "webhook_url": (str,),
    "duration": (int,),
    "webhook_events": (list,),  # event types or patterns (video.generation.*): domain/webhook_events.py
}


@dataclass(frozen=True, slots=True)
class DropKey:
    job_name: str
    filename: str

    @property
    def role(self) -> str | None:
        """first / last / audio / first_clip / job.json / prompt.txt, or None for a file outside the
        convention. The extension is not judged here: the content is, at validation."""
        lower = self.filename.lower()
        if lower in (JOB_JSON, PROMPT_TXT):
            return lower
        stem, dot, ext = lower.partition(".")
        if stem in INPUT_NAMES and dot and ext and "." not in ext:
            return stem
        return None


def parse_key(key: str, prefix: str = "inbox/") -> DropKey | None:
    """``inbox/<job-name>/<file>`` -> DropKey; anything else -> None (ignored, not failed)."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return DropKey(job_name=parts[0], filename=parts[1])


def check_job_name(job_name: str) -> None:
    if job_name in (".", ".."):
        raise InvalidJob(
            f"the job folder name {job_name!r} is not allowed",
            code="InvalidJobName",
            hint="put the frames in a folder with an ordinary name, e.g. inbox/my-shot/first.png",
        )
    if len(job_name.encode()) > MAX_JOB_NAME_BYTES:
        raise InvalidJob(
            f"the job folder name is {len(job_name.encode())} bytes long; the limit is {MAX_JOB_NAME_BYTES}",
            code="InvalidJobName",
            hint="use a shorter folder name",
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in job_name):
        raise InvalidJob(
            "the job folder name contains control characters",
            code="InvalidJobName",
            hint="use printable characters only",
        )


def run_digest(files: dict[str, tuple[str, str]]) -> str:
    """Digest of the convention files: role -> (filename, etag)."""
    lines = sorted(f"{role}\t{name}\t{etag.strip(chr(34))}" for role, (name, etag) in files.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def _type_name(types: tuple[type, ...]) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", list: "a list"}[types[0]]


def parse_job_json(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_JOB_JSON_BYTES:
        raise InvalidJob(
            f"job.json is {len(raw)} bytes; the limit is {MAX_JOB_JSON_BYTES}",
            code="InvalidJobJson",
            hint="keep job.json to the documented fields",
            field="job.json",
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidJob(
            "job.json is not UTF-8 text",
            code="InvalidJobJson",
            hint="save job.json as UTF-8",
            field="job.json",
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidJob(
            f"job.json is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            code="InvalidJobJson",
            hint='job.json must be one JSON object, e.g. {"prompt": "the camera pans left"}',
            field="job.json",
        ) from None
    if not isinstance(data, dict):
        raise InvalidJob(
            "job.json must be a JSON object",
            code="InvalidJobJson",
            hint='e.g. {"prompt": "the camera pans left"}',
            field="job.json",
        )
    for name, value in data.items():
        if name not in JOB_FIELDS:
            close = difflib.get_close_matches(name, JOB_FIELDS, n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidJob(
                f"job.json has an unknown field {name!r}{suggestion}",
                code="InvalidJobJson",
                hint="allowed fields: " + ", ".join(JOB_FIELDS),
                field=name,
            )
        types = JOB_FIELDS[name]
        if value is None:
            continue
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise InvalidJob(
                f"job.json field {name!r} must be {_type_name(types)}, got {type(value).__name__}",
                code="InvalidJobJson",
                hint=f"fix the value of {name!r}",
                field=name,
            )
        if name == "webhook_events":
            data[name] = list(parse_event_filter(value))
    return {k: v for k, v in data.items() if v is not None}


def decode_prompt_txt(raw: bytes) -> str:
    if len(raw) > MAX_PROMPT_TXT_BYTES:
        raise InvalidJob(
            f"prompt.txt is {len(raw)} bytes; the limit is {MAX_PROMPT_TXT_BYTES}",
            code="InvalidPrompt",
            hint="the provider accepts prompts of up to 800 characters",
            field="prompt",
        )
    try:
        return raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise InvalidJob(
            "prompt.txt is not UTF-8 text",
            code="InvalidPrompt",
            hint="save prompt.txt as UTF-8",
            field="prompt",
        ) from None


def build_spec(
    job_fields: dict[str, Any],
    prompt_txt: str | None,
    *,
    default_model: str,
    default_resolution: str,
    default_prompt_extend: bool,
    default_watermark: bool,
    default_webhook_url: str = "",
) -> JobSpec:
    """Merge job.json over the deployment's defaults. Parameter rules are checked by the provider
    validator (inbetween.provider.validation) before anything is paid for."""
    model_name = job_fields.get("model", default_model)
    spec = model_spec(model_name)
    if spec is None:
        raise InvalidJob(
            f"unknown model {model_name!r}",
            code="UnknownModel",
            hint="use one of: " + ", ".join(MODELS),
            field="model",
        )
    resolution = job_fields.get("resolution")
    if resolution is None:
        resolution = default_resolution if default_resolution in spec.resolutions else spec.default_resolution
    prompt = job_fields.get("prompt", prompt_txt or None)
    return JobSpec(
        model=spec.name,
        resolution=resolution,
        prompt=prompt or None,
        negative_prompt=job_fields.get("negative_prompt") or None,
        prompt_extend=job_fields.get("prompt_extend", default_prompt_extend),
        watermark=job_fields.get("watermark", default_watermark),
        seed=job_fields.get("seed"),
        template=job_fields.get("template") or None,
        webhook_url=job_fields.get("webhook_url") or default_webhook_url or None,
        duration=job_fields.get("duration"),  # each model's own range is checked before paying
        webhook_events=tuple(job_fields["webhook_events"]) if job_fields.get("webhook_events") else None,
    )
