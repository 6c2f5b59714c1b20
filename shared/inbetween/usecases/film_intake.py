"""From a film folder to shots: settle, order the keyframes, validate every shot before paying, then make
(or reuse) one ordinary job per shot and the film run that waits for them.

Every shot is checked as a single job would be (its model's combination, resolution, duration, prompt,
both keyframes' bytes) and all shots must come out at one size: the first keyframe's output size. A
keyframe of another aspect ratio is refused, naming it (a film is one frame size; letterboxing is the
stitch's safety net, not a rule users should meet). Nothing is paid for unless every shot is valid.

Order, for crash safety: the shots' jobs first (a job that exists is linked to the run instead, which is
how an unchanged shot is reused and never paid twice), then the run, then one look at the run (every
shot may already be stored). A crash before the run exists leaves jobs that a redelivered event links;
a run never exists without its shots' jobs.

``intake.examine`` sends a folder here when :func:`~inbetween.domain.films.is_film_folder` says it is one.
A folder with fewer than two keyframes is incomplete, as a job folder without its last frame is: it waits
for the incomplete-drop timeout, then gets its error.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import FIRST_CLIP, LAST, expected_output_size, model_spec
from inbetween.domain.drops import MAX_PROMPT_TXT_BYTES, build_spec, check_job_name, decode_prompt_txt
from inbetween.domain.films import (
    CONTINUE_TAIL_S,
    FILM_JSON,
    MAX_FILM_JSON_BYTES,
    FilmMode,
    FilmOptions,
    FilmRun,
    FilmStatus,
    Keyframe,
    PendingShot,
    ShotPlan,
    ShotRef,
    film_digest,
    is_film_file,
    keyframe_number,
    order_keyframes,
    parse_film_json,
    plan_shots,
    prompt_file_stem,
)
from inbetween.domain.models import DueKind, ErrorInfo, InputObject, Job, JobSpec, JobStatus, ObjectInfo
from inbetween.errors import InvalidJob
from inbetween.observability import count, logger
from inbetween.provider.validation import ImageInfo, inspect_input
from inbetween.usecases import admission, film_runs
from inbetween.usecases.drop_checks import LAST_MODIFIED_RESOLUTION_S, Folder, IntakeOutcome, validate_folder

# a film run retried by re-uploading its folder is ``<run>~2``, ``~3``...; a failed shot's job likewise
RETRY_MARK = "~"
_T = TypeVar("_T")
# the last keyframe is read within the largest image limit (wan2.7: 20 MB); its shot's check applied the model's
MAX_KEYFRAME_BYTES = 20 * 1024 * 1024


def examine_film(deps: Deps, film: str, objects: list[ObjectInfo], *, final: bool = False) -> IntakeOutcome:
    """Look at a film folder as it is now (``objects``: everything under ``inbox/<film>/``)."""
    settings = deps.settings
    files = {name: obj for obj in objects if is_film_file(name := obj.key.rsplit("/", 1)[-1])}
    if not files:
        return IntakeOutcome.IGNORED_EMPTY
    now = deps.clock.now()
    newest = max(obj.last_modified for obj in files.values())
    age = now - (newest + LAST_MODIFIED_RESOLUTION_S)
    if not final and settings.settle_seconds > 0 and age < settings.settle_seconds:
        deps.queues.recheck_drop_later(film, math.ceil(settings.settle_seconds - age) + 1)
        return IntakeOutcome.SETTLING
    logger.set_correlation_id(film)
    numbered = sum(1 for name in files if keyframe_number(name) is not None)
    if numbered < 2 and not final:
        # one keyframe so far (or only film.json): the others may still be on their way
        deps.store.note_incomplete_drop(
            film, first_seen=now, settle_by=now + settings.incomplete_drop_timeout_s
        )
        return IntakeOutcome.INCOMPLETE
    try:
        check_job_name(film)
        keyframes = order_keyframes(
            {name: obj.etag for name, obj in files.items() if keyframe_number(name) is not None}
        )
        options = _options(deps, files)
        shots = plan_shots(keyframes, options, _prompts(deps, files, keyframes))
        specs, size = _validate(deps, film, files, shots, options)
    except InvalidJob as exc:
        return _reject(
            deps, film, files, ErrorInfo(code=exc.code, message=exc.message, hint=exc.hint, field=exc.field)
        )
    # a retry needs files uploaded after the failure: S3's times are whole seconds (truncated), so one
    # uploaded in the second of the failure counts as before it (safe: a duplicate event never retries)
    uploaded = newest
    base_run_id = f"{film}/{film_digest(shots, options)}"
    latest, attempt = _latest(deps.store.get_film_run, base_run_id)
    if latest is not None and not _retry_asked(latest, uploaded):
        if latest.status.is_final and latest.notified_at is None:
            film_runs.announce(deps, latest.run_id)
        return IntakeOutcome.DUPLICATE
    run_id = base_run_id if latest is None else _attempt_id(base_run_id, attempt + 1)
    created = 0
    refs = []
    continued = options.mode is FilmMode.CONTINUE
    for shot, spec in zip(shots, specs, strict=True):
        job_id = _shot_job_id(deps, f"{film}/shot-{shot.digest}", uploaded)
        if continued and shot.index > 1:
            # made once the shot before is stored (its tail is this shot's first clip); an earlier run's
            # job of the same chain is reused as it is
            if deps.store.link_shot(job_id, run_id):
                refs.append(ShotRef(shot.index, shot.number, shot.last.number, job_id))
            else:
                pending = PendingShot(continued_spec(spec), _input(files[shot.last.filename]))
                refs.append(ShotRef(shot.index, shot.number, shot.last.number, job_id, pending))
            continue
        job = Job(
            job_id=job_id,
            job_name=film,
            run_id=job_id.rsplit("/", 1)[-1],
            status=JobStatus.WAITING,
            spec=spec,
            inputs={"first": _input(files[shot.first.filename]), "last": _input(files[shot.last.filename])},
            created_at=now,
            updated_at=now,
            expected_size=size,
            film_runs=(run_id,),
            announce=options.shot_events,
            estimate_micros=costs.estimate(spec, deps.settings.provider_region),
        )
        if deps.store.add_job(job, due=(DueKind.ADMIT, now)):
            created += 1
        else:
            deps.store.link_shot(job_id, run_id)  # the same shot in an earlier run: reused, not paid again
        refs.append(ShotRef(shot.index, shot.number, shot.last.number, job_id))
    run = FilmRun(
        run_id=run_id,
        film=film,
        status=FilmStatus.RUNNING,
        shots=tuple(refs),
        created_at=now,
        updated_at=now,
        seam=options.seam,
        mode=options.mode,
        shot_events=options.shot_events,
        webhook_url=options.webhook_url or settings.default_webhook_url or None,
        keyframes=tuple(files[k.filename].key for k in keyframes),
        size=size,
    )
    later = sum(1 for ref in refs if ref.pending is not None)
    if not deps.store.add_film_run(run, due_at=now + film_runs.FILM_RECHECK_S):
        return IntakeOutcome.DUPLICATE  # a duplicate event got here first
    deps.store.note_open_run(film, run_id)  # deleting its keyframes from the inbox cancels it
    count("FilmsAccepted")
    logger.info(
        "film accepted",
        extra={
            "film_run": run_id,
            "shots": len(shots),
            "new_shots": created,
            "later_shots": later,
            "reused": len(shots) - created - later,
        },
    )
    deps.store.forget_drop(film)
    if created:
        admission.admit(deps, specs[0].model)
    film_runs.advance(deps, run_id)
    return IntakeOutcome.ACCEPTED


def _attempt_id(base_id: str, attempt: int) -> str:
    return base_id if attempt == 1 else f"{base_id}{RETRY_MARK}{attempt}"


def _latest(get: Callable[[str], _T | None], base_id: str) -> tuple[_T | None, int]:
    """The newest attempt of a run or of a shot's job (``<id>``, ``<id>~2``, ``<id>~3``...) and its number."""
    latest, attempt = get(base_id), 1
    if latest is None:
        return None, 1
    while (following := get(_attempt_id(base_id, attempt + 1))) is not None:
        latest, attempt = following, attempt + 1
    return latest, attempt


def _retry_asked(run: FilmRun, uploaded: float) -> bool:
    """A failed (or cancelled) run whose folder was uploaded again after it ended (the same files: a
    duplicate S3 event lists them as they were, a re-upload with a newer time) is run again: its failed
    (or cancelled) shots are made again, the others reused."""
    ended = run.status in (FilmStatus.FAILED, FilmStatus.CANCELED)
    return ended and run.finished_at is not None and uploaded > run.finished_at


def _shot_job_id(deps: Deps, base_id: str, uploaded: float) -> str:
    """The job a shot is made by: its newest attempt, unless that one failed before the folder was
    uploaded again (then the next attempt: a retry, paid once more because the user asked for it)."""
    job, attempt = _latest(deps.store.get_job, base_id)
    if job is None:
        return base_id
    failed = job.status.is_final and job.status is not JobStatus.STORED
    if failed and (job.finished_at or job.updated_at) < uploaded:
        return _attempt_id(base_id, attempt + 1)
    return job.job_id


def _input(obj: ObjectInfo) -> InputObject:
    return InputObject(key=obj.key, etag=obj.etag, size=obj.size)


def _options(deps: Deps, files: dict[str, ObjectInfo]) -> FilmOptions:
    film_json = next((obj for name, obj in files.items() if name.lower() == FILM_JSON), None)
    if film_json is None:
        return FilmOptions()
    return parse_film_json(
        deps.blobs.read(deps.settings.inbox_bucket, film_json.key, max_bytes=MAX_FILM_JSON_BYTES + 1)
    )


def _prompts(deps: Deps, files: dict[str, ObjectInfo], keyframes: list[Keyframe]) -> dict[int, str]:
    """Prompt files by the number of the keyframe they sit beside (``03.txt`` beside ``03.png``)."""
    by_stem = {k.filename.rpartition(".")[0]: k.number for k in keyframes}
    prompts: dict[int, str] = {}
    for name, obj in files.items():
        stem = prompt_file_stem(name)
        if stem is None:
            continue
        if stem not in by_stem:
            raise InvalidJob(
                f"{name} sits beside no keyframe named {stem}.<image>",
                code="InvalidFilm",
                hint="name a shot's prompt file after its first keyframe (03.txt beside 03.png)",
                field=name,
            )
        raw = deps.blobs.read(deps.settings.inbox_bucket, obj.key, max_bytes=MAX_PROMPT_TXT_BYTES + 1)
        prompts[by_stem[stem]] = decode_prompt_txt(raw)
    return prompts


def _validate(
    deps: Deps, film: str, files: dict[str, ObjectInfo], shots: list[ShotPlan], options: FilmOptions
) -> tuple[list[JobSpec], tuple[int, int]]:
    """Every shot as a job would be checked, before anything is paid for; one output size for all."""
    settings = deps.settings
    specs: list[JobSpec] = []
    size: tuple[int, int] | None = None
    for shot in shots:
        try:
            spec = build_spec(
                shot.fields,
                None,
                default_model=settings.default_model,
                default_resolution=settings.default_resolution,
                default_prompt_extend=settings.prompt_extend,
                default_watermark=settings.watermark,
            )
            first, last = files[shot.first.filename], files[shot.last.filename]
            folder = Folder(job_name=film, files={"first": first, "last": last}, newest=0.0)
            shot_size = validate_folder(deps, folder, spec)
        except InvalidJob as exc:
            raise _in_shot(exc, shot) from None
        if size is None:
            size = shot_size
        elif shot_size != size:
            raise _mixed(shot.first.filename, shot_size, size)
        if options.mode is FilmMode.CONTINUE:
            _check_continuable(spec, shot)
        specs.append(spec)
    assert size is not None  # noqa: S101 - a film has at least one shot (order_keyframes)
    # the last keyframe is no shot's first frame: its own size must agree too (it ends the film)
    ending = shots[-1].last
    ending_size = expected_output_size(
        specs[-1].resolution, first_frame=_image_size(deps, files[ending.filename], specs[-1])
    )
    if ending_size != size:
        raise _mixed(ending.filename, ending_size, size)
    if options.webhook_url:
        deps.webhooks.check_destination(options.webhook_url)
    return specs, size


def _check_continuable(spec: JobSpec, shot: ShotPlan) -> None:
    """Continue mode: the model continues a clip toward a last frame, and a continued shot's length plus
    the tail it continues is one the model makes (the provider counts the input clip in the duration)."""
    model = model_spec(spec.model)
    if model is None or not model.accepts({FIRST_CLIP, LAST}):
        raise InvalidJob(
            f"film.json mode 'continue' needs a model that continues a clip toward a last frame; "
            f"{spec.model} does not",
            code="InvalidFilmJson",
            hint="use wan2.7-i2v for continue mode, or leave mode out (every shot from its two keyframes)",
            field="mode",
        )
    if shot.index == 1:
        return
    own = spec.duration or model.default_duration
    if own + CONTINUE_TAIL_S not in model.durations:
        longest = max(model.durations) - CONTINUE_TAIL_S
        raise InvalidJob(
            f"shot {shot.index} (keyframe {shot.number} to {shot.last.number}) lasts {own} s; a continued "
            f"shot also repeats the {CONTINUE_TAIL_S} s it continues, and {own + CONTINUE_TAIL_S} s is "
            f"more than {spec.model} makes",
            code="UnsupportedDuration",
            hint=f"give continued shots (all but the first) at most {longest} s",
            field=f"shots.{shot.number}.duration",
        )


def continued_spec(spec: JobSpec) -> JobSpec:
    """A continued shot's request: its own seconds plus the tail's, which the output contains."""
    model = model_spec(spec.model)
    own = spec.duration or (model.default_duration if model else CONTINUE_TAIL_S)
    return replace(spec, duration=own + CONTINUE_TAIL_S)


def _in_shot(exc: InvalidJob, shot: ShotPlan) -> InvalidJob:
    """A shot's error, saying which shot; a keyframe's own error names the keyframe's file."""
    names = {"first": shot.first.filename, "last": shot.last.filename}
    keyframe = names.get(exc.field or "") or (exc.field if exc.field in names.values() else None)
    return InvalidJob(
        f"shot {shot.index} (keyframe {shot.number} to {shot.last.number}): {exc.message}",
        code=exc.code,
        hint=exc.hint,
        field=keyframe or (f"shots.{shot.number}.{exc.field}" if exc.field else f"shots.{shot.number}"),
    )


def _mixed(filename: str, got: tuple[int, int], film_size: tuple[int, int]) -> InvalidJob:
    return InvalidJob(
        f"keyframe {filename} makes a {got[0]}x{got[1]} shot; the film is {film_size[0]}x{film_size[1]} "
        "(its first keyframe's aspect ratio at the film's resolution)",
        code="MixedAspectRatios",
        hint="give every keyframe the first keyframe's aspect ratio (crop or pad it)",
        field=filename,
    )


def _image_size(deps: Deps, obj: ObjectInfo, spec: JobSpec) -> tuple[int, int]:
    data = deps.blobs.read(deps.settings.inbox_bucket, obj.key, etag=obj.etag, max_bytes=MAX_KEYFRAME_BYTES)
    info = inspect_input("first", data, model=spec.model, name=obj.key.rsplit("/", 1)[-1])
    assert isinstance(info, ImageInfo)  # noqa: S101 - the "first" role is an image
    return info.width, info.height


def _reject(deps: Deps, film: str, files: dict[str, ObjectInfo], error: ErrorInfo) -> IntakeOutcome:
    """A refused film folder: a REJECTED run (so a duplicate event finds it), one film.failed event."""
    listing = "\n".join(sorted(f"{name}\t{obj.etag}" for name, obj in files.items()))
    run_id = f"{film}/rejected-{hashlib.sha256(listing.encode()).hexdigest()[:12]}"
    now = deps.clock.now()
    run = FilmRun(
        run_id=run_id,
        film=film,
        status=FilmStatus.REJECTED,
        shots=(),
        created_at=now,
        updated_at=now,
        error=error,
        finished_at=now,
    )
    if deps.store.add_film_run(run, due_at=now + deps.timing.notify_grace_s):
        count("FilmsRejected")
        logger.info("film rejected", extra={"film_run": run_id, "code": error.code})
    film_runs.announce(deps, run_id)
    deps.store.forget_drop(film)
    return IntakeOutcome.REJECTED
