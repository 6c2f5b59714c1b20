"""From S3 objects to jobs: wait for the folder to settle, identify the run, validate, queue for a slot.

A folder of numbered keyframes (and no first.*/last.*) is a storyboard: ``film_intake`` takes it."""

from __future__ import annotations

import math

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import MEDIA_ROLES, ROLE_FILES, ROLE_NOUNS, model_spec
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
from inbetween.domain.films import is_film_file, is_film_folder
from inbetween.domain.models import DueKind, ErrorInfo, InputObject, Job, JobSpec, JobStatus, ObjectInfo
from inbetween.errors import InvalidJob
from inbetween.observability import count, logger
from inbetween.usecases import admission, film_intake
from inbetween.usecases.drop_checks import (
    LAST_MODIFIED_RESOLUTION_S,
    Folder,
    IntakeOutcome,
    validate_folder,
)
from inbetween.usecases.film_intake import RETRY_MARK
from inbetween.usecases.notify import report_and_notify

__all__ = ["Folder", "IntakeOutcome", "examine", "on_object_created", "settle_overdue_drops"]


def on_object_created(deps: Deps, bucket: str, key: str) -> IntakeOutcome:
    """One S3 notification."""
    settings = deps.settings
    if bucket != settings.inbox_bucket:
        return IntakeOutcome.IGNORED_BUCKET
    drop = parse_key(key, settings.inbox_prefix)
    if drop is None or (drop.role is None and not is_film_file(drop.filename)):
        return IntakeOutcome.IGNORED_KEY
    logger.info("object dropped", extra={"job": drop.job_name, "file": drop.filename})
    return examine(deps, drop.job_name)


def _read_folder(deps: Deps, job_name: str, objects: list[ObjectInfo]) -> tuple[Folder, list[str]]:
    settings = deps.settings
    files: dict[str, ObjectInfo] = {}
    problems: list[str] = []
    for obj in objects:
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
    objects = deps.blobs.list_folder(settings.inbox_bucket, f"{settings.inbox_prefix}{job_name}/")
    if is_film_folder([obj.key.rsplit("/", 1)[-1] for obj in objects]):
        return film_intake.examine_film(deps, job_name, objects, final=final)
    folder, problems = _read_folder(deps, job_name, objects)
    if not folder.files:
        deps.store.forget_drop(job_name)
        return IntakeOutcome.IGNORED_EMPTY
    now = deps.clock.now()
    age = now - (folder.newest + LAST_MODIFIED_RESOLUTION_S)
    if not final and settings.settle_seconds > 0 and age < settings.settle_seconds:
        recheck_in_s = math.ceil(settings.settle_seconds - age) + 1
        deps.queues.recheck_drop_later(job_name, recheck_in_s)
        logger.info("drop settling", extra={"job": job_name, "recheck_in_s": recheck_in_s})
        return IntakeOutcome.SETTLING
    digest = run_digest({role: (o.key.rsplit("/", 1)[-1], o.etag) for role, o in folder.files.items()})
    job_id = f"{job_name}/{digest}"
    existing = deps.store.get_job(job_id)
    attempt = 1
    while existing is not None and _dropped_again_after_cancel(existing, folder.newest):
        # the same files uploaded again after a cancel: a new run (the user asks for it once more)
        attempt += 1
        job_id = f"{job_name}/{digest}{RETRY_MARK}{attempt}"
        existing = deps.store.get_job(job_id)
    digest = job_id.rsplit("/", 1)[-1]
    logger.set_correlation_id(job_id)
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
                logger.info(
                    "drop incomplete",
                    extra={
                        "job": job_name,
                        "missing": missing,
                        "timeout_s": settings.incomplete_drop_timeout_s,
                    },
                )
                return IntakeOutcome.INCOMPLETE
            raise InvalidJob(
                f"the job folder has no {' and no '.join(missing)} after "
                f"{settings.incomplete_drop_timeout_s} seconds",
                code="IncompleteDrop",
                hint=f"upload the {' and the '.join(missing)} to {settings.inbox_prefix}{job_name}/; "
                "the job runs as soon as the folder is complete",
            )
        expected = validate_folder(deps, folder, spec)
    except InvalidJob as exc:
        error = ErrorInfo(code=exc.code, message=exc.message, hint=exc.hint, field=exc.field)
        rejected = Job(
            job_id, job_name, digest, JobStatus.REJECTED, None, inputs, now, now, error=error, finished_at=now
        )
        _reject(deps, rejected)
        deps.store.forget_drop(job_name)
        return IntakeOutcome.REJECTED
    job = Job(
        job_id,
        job_name,
        digest,
        JobStatus.WAITING,
        spec,
        inputs,
        now,
        now,
        expected_size=expected,
        estimate_micros=costs.estimate(spec, deps.settings.provider_region),
    )
    if not deps.store.add_job(job, due=(DueKind.ADMIT, now)):
        return IntakeOutcome.DUPLICATE
    deps.store.note_open_run(job_name, job_id)  # deleting its inputs from the inbox cancels it
    deps.store.forget_drop(job_name)
    count("JobsAccepted")
    logger.info("job accepted", extra={"job_id": job_id, "job": job_name, "model": spec.model})
    admission.admit(deps, spec.model)
    return IntakeOutcome.ACCEPTED


def _dropped_again_after_cancel(job: Job, uploaded: float) -> bool:
    """A cancelled run whose files were uploaded again after it ended. S3's times are whole seconds
    (truncated): an upload in the second of the cancel counts as before it (a duplicate event of the
    first upload must never start a second run)."""
    ended = job.finished_at
    return job.status is JobStatus.CANCELED and ended is not None and uploaded > ended


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


def _reject(deps: Deps, job: Job) -> None:
    """Record the refused drop as a final job (so a duplicate event finds it) and tell the user."""
    if deps.store.add_job(job, due=(DueKind.NOTIFY, job.created_at + deps.timing.notify_grace_s)):
        count("JobsRejected")
        logger.info(
            "job rejected",
            extra={
                "job_id": job.job_id,
                "job": job.job_name,
                "code": job.error.code if job.error else None,
                "error": job.error.message if job.error else None,
            },
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
