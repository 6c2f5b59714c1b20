"""From S3 objects to jobs: wait for the folder to settle, identify the run, validate, queue for a slot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from inbetween.deps import Deps
from inbetween.domain.catalog import (
    IMAGE_ROLES,
    MEDIA_ROLES,
    ROLE_FILES,
    ROLE_NOUNS,
    expected_output_size,
    model_spec,
)
from inbetween.domain.drops import (
    JOB_JSON,
    MAX_JOB_JSON_BYTES,
    MAX_PROMPT_TXT_BYTES,
    PROMPT_TXT,
    build_spec,
    check_job_name,
    decode_prompt_txt,
    parse_job_json,
    parse_key,
    run_digest,
)
from inbetween.domain.models import DueKind, ErrorInfo, InputObject, Job, JobSpec, JobStatus, ObjectInfo
from inbetween.errors import InvalidJob
from inbetween.observability import count, logger
from inbetween.provider.models import CreateTaskRequest
from inbetween.provider.validation import (
    AudioInfo,
    ClipInfo,
    ImageInfo,
    InputInfo,
    inspect_input,
    validate_request,
)
from inbetween.usecases import admission
from inbetween.usecases.notify import report_and_notify

# S3's LastModified has one-second resolution: an object may be up to a second younger than it says
LAST_MODIFIED_RESOLUTION_S = 1.0
# validation never sends an input: these stand in for the URLs the provider would fetch
PLACEHOLDER_URLS = {
    "first": "https://inputs.invalid/first.png",
    "last": "https://inputs.invalid/last.png",
    "audio": "https://inputs.invalid/audio.mp3",
    "first_clip": "https://inputs.invalid/first_clip.mp4",
}
T = TypeVar("T")


class IntakeOutcome(StrEnum):
    IGNORED_BUCKET = "ignored: not the inbox bucket"
    IGNORED_KEY = "ignored: outside the drop-folder convention"
    IGNORED_EMPTY = "ignored: empty folder"
    SETTLING = "settling"
    DUPLICATE = "duplicate"
    INCOMPLETE = "incomplete"
    REJECTED = "rejected"
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class Folder:
    job_name: str
    files: dict[str, ObjectInfo]  # role -> object
    newest: float


def on_object_created(deps: Deps, bucket: str, key: str) -> IntakeOutcome:
    """One S3 notification."""
    settings = deps.settings
    if bucket != settings.inbox_bucket:
        return IntakeOutcome.IGNORED_BUCKET
    drop = parse_key(key, settings.inbox_prefix)
    if drop is None or drop.role is None:
        return IntakeOutcome.IGNORED_KEY
    return examine(deps, drop.job_name)


def _read_folder(deps: Deps, job_name: str) -> tuple[Folder, list[str]]:
    settings = deps.settings
    prefix = f"{settings.inbox_prefix}{job_name}/"
    files: dict[str, ObjectInfo] = {}
    problems: list[str] = []
    for obj in deps.blobs.list_folder(settings.inbox_bucket, prefix):
        drop = parse_key(obj.key, settings.inbox_prefix)
        if drop is None or drop.role is None:
            continue
        if drop.role in files:
            problems.append(
                f"two {drop.role} files: {files[drop.role].key.rsplit('/', 1)[-1]} and {drop.filename}"
            )
            continue
        files[drop.role] = obj
    newest = max((o.last_modified for o in files.values()), default=0.0)
    return Folder(job_name=job_name, files=files, newest=newest), problems


def examine(deps: Deps, job_name: str, *, final: bool = False) -> IntakeOutcome:
    """Look at a job folder as it is now. ``final``: the folder had its time; incomplete means rejected."""
    settings = deps.settings
    folder, problems = _read_folder(deps, job_name)
    if not folder.files:
        deps.store.forget_drop(job_name)
        return IntakeOutcome.IGNORED_EMPTY
    now = deps.clock.now()
    age = now - (folder.newest + LAST_MODIFIED_RESOLUTION_S)
    if not final and settings.settle_seconds > 0 and age < settings.settle_seconds:
        deps.queues.recheck_drop_later(job_name, math.ceil(settings.settle_seconds - age) + 1)
        return IntakeOutcome.SETTLING
    digest = run_digest({role: (o.key.rsplit("/", 1)[-1], o.etag) for role, o in folder.files.items()})
    job_id = f"{job_name}/{digest}"
    logger.set_correlation_id(job_id)
    existing = deps.store.get_job(job_id)
    if existing is not None:
        if existing.status.is_final and existing.notified_at is None:
            report_and_notify(deps, existing)
        return IntakeOutcome.DUPLICATE
    inputs = {role: InputObject(key=o.key, etag=o.etag, size=o.size) for role, o in folder.files.items()}
    try:
        check_job_name(job_name)
        if problems:
            raise InvalidJob(
                "the job folder is ambiguous: " + "; ".join(problems),
                code="AmbiguousDrop",
                hint="keep exactly one first.<ext> and at most one last.<ext> in the folder",
            )
        spec = _spec(deps, folder)
        missing = _missing(folder, spec)
        if missing:
            if not final:
                deps.store.note_incomplete_drop(
                    job_name, first_seen=now, settle_by=now + settings.incomplete_drop_timeout_s
                )
                return IntakeOutcome.INCOMPLETE
            raise InvalidJob(
                f"the job folder has no {' and no '.join(missing)} after "
                f"{settings.incomplete_drop_timeout_s} seconds",
                code="IncompleteDrop",
                hint=f"upload the {' and the '.join(missing)} to {settings.inbox_prefix}{job_name}/; "
                "the job runs as soon as the folder is complete",
            )
        expected = _validate(deps, folder, spec)
    except InvalidJob as exc:
        error = ErrorInfo(code=exc.code, message=exc.message, hint=exc.hint, field=exc.field)
        rejected = Job(
            job_id, job_name, digest, JobStatus.REJECTED, None, inputs, now, now, error=error, finished_at=now
        )
        _reject(deps, rejected)
        deps.store.forget_drop(job_name)
        return IntakeOutcome.REJECTED
    job = Job(job_id, job_name, digest, JobStatus.WAITING, spec, inputs, now, now, expected_size=expected)
    if not deps.store.add_job(job, due=(DueKind.ADMIT, now)):
        return IntakeOutcome.DUPLICATE
    deps.store.forget_drop(job_name)
    count("JobsAccepted")
    logger.info("job accepted", extra={"job_id": job_id, "model": spec.model})
    admission.admit(deps, spec.model)
    return IntakeOutcome.ACCEPTED


def _spec(deps: Deps, folder: Folder) -> JobSpec:
    settings = deps.settings
    fields: dict[str, object] = {}
    prompt_txt = None
    if JOB_JSON in folder.files:
        obj = folder.files[JOB_JSON]
        fields = parse_job_json(
            deps.blobs.read(settings.inbox_bucket, obj.key, max_bytes=MAX_JOB_JSON_BYTES + 1)
        )
    if PROMPT_TXT in folder.files:
        obj = folder.files[PROMPT_TXT]
        prompt_txt = decode_prompt_txt(
            deps.blobs.read(settings.inbox_bucket, obj.key, max_bytes=MAX_PROMPT_TXT_BYTES + 1)
        )
    spec = build_spec(
        fields,
        prompt_txt,
        default_model=settings.default_model,
        default_resolution=settings.default_resolution,
        default_prompt_extend=settings.prompt_extend,
        default_watermark=settings.watermark,
        default_webhook_url=settings.default_webhook_url,
    )
    if spec.webhook_url:
        deps.webhooks.check_destination(spec.webhook_url)
    return spec


def _missing(folder: Folder, spec: JobSpec) -> list[str]:
    """What the folder still needs to be a task the model takes: empty when it is one, or when waiting
    cannot make it one (validation then says what is wrong). Alternatives are joined with "or"."""
    model = model_spec(spec.model)
    if model is None:
        return []
    roles = frozenset(role for role in folder.files if role in MEDIA_ROLES)
    sets = model.template_media_sets if spec.template else model.media_sets
    if roles in sets:
        return []
    completions = [s - roles for s in sets if roles < s]
    if not completions:
        return []
    fewest = min(len(c) for c in completions)
    options = sorted(
        {
            " and ".join(_named(r) for r in sorted(c, key=MEDIA_ROLES.index))
            for c in completions
            if len(c) == fewest
        }
    )
    return [" or ".join(options)]


def _named(role: str) -> str:
    return f"{ROLE_NOUNS[role]} ({ROLE_FILES[role]})"


def _validate(deps: Deps, folder: Folder, spec: JobSpec) -> tuple[int, int]:
    """Parameters and the combination first, then every input's bytes against the model's limits;
    nothing here reaches the provider. Returns the video's size."""
    model = model_spec(spec.model)
    present = [role for role in MEDIA_ROLES if role in folder.files]
    request = CreateTaskRequest.for_spec(
        spec,
        region=deps.settings.provider_region,
        media={role: PLACEHOLDER_URLS[role] for role in present},
    )
    validate_request(request)
    infos: dict[str, InputInfo] = {}
    for role in present:
        obj = folder.files[role]
        name = obj.key.rsplit("/", 1)[-1]
        limit = model.max_input_bytes(role) if model else None
        if limit is not None and obj.size > limit:
            raise InvalidJob(
                f"{name} is {obj.size / 1048576:.1f} MB; {spec.model} accepts at most {limit // 1048576} MB "
                f"for a {ROLE_NOUNS[role]}",
                code="ImageFileTooLarge" if role in IMAGE_ROLES else "MediaFileTooLarge",
                hint="save the frame as JPEG or a smaller PNG"
                if role in IMAGE_ROLES
                else "use a shorter or smaller file",
                field=role,
            )
        data = deps.blobs.read(deps.settings.inbox_bucket, obj.key, etag=obj.etag, max_bytes=limit)
        infos[role] = inspect_input(role, data, model=spec.model, name=name)
    validate_request(
        request,
        first=_of(infos, "first", ImageInfo),
        last=_of(infos, "last", ImageInfo),
        audio=_of(infos, "audio", AudioInfo),
        first_clip=_of(infos, "first_clip", ClipInfo),
    )
    first, clip = _of(infos, "first", ImageInfo), _of(infos, "first_clip", ClipInfo)
    return expected_output_size(
        spec.resolution,
        first_frame=(first.width, first.height) if first else None,
        first_clip=(clip.width, clip.height) if clip else None,
    )


def _of(infos: dict[str, InputInfo], role: str, kind: type[T]) -> T | None:
    info = infos.get(role)
    return info if isinstance(info, kind) else None


def _reject(deps: Deps, job: Job) -> None:
    """Record the refused drop as a final job (so a duplicate event finds it) and tell the user."""
    if deps.store.add_job(job, due=(DueKind.NOTIFY, job.created_at + deps.timing.notify_grace_s)):
        count("JobsRejected")
        logger.info(
            "job rejected", extra={"job_id": job.job_id, "code": job.error.code if job.error else None}
        )
        stored = deps.store.get_job(job.job_id)
        if stored is not None:
            report_and_notify(deps, stored)


def settle_overdue_drops(deps: Deps, limit: int = 50) -> int:
    """Poller: folders that stayed incomplete past the timeout get their final answer."""
    handled = 0
    for job_name in deps.store.overdue_drops(deps.clock.now(), limit):
        examine(deps, job_name, final=True)
        deps.store.forget_drop(job_name)
        handled += 1
    return handled
