"""The storyboard convention: a folder of numbered keyframes is a film, each pair of neighbours a shot.

    inbox/<film>/01.png, frame_002.jpg, kf-3.webp   keyframes: images whose name ends in a number,
                                                     ordered by that number (gaps allowed)
    inbox/<film>/03.txt                              optional: the prompt of the shot that starts at
                                                     keyframe 3 (plain UTF-8 text)
    inbox/<film>/film.json                           optional: model, resolution, mode, seam, defaults for
                                                     every shot, per-shot overrides by number

How a folder is told apart: one with a ``first.*`` (or ``last.*``, ``audio.*``, ``first_clip.*``) is
an ordinary job, whatever else it holds; otherwise one with a ``film.json`` or a numbered image is a
film. Shot k goes from the k-th keyframe to the next; a film of N keyframes has N-1 shots.

A shot is an ordinary job whose identity is its content: the two keyframes' ETags and the shot's
options (and, in ``continue`` mode, the identity of the shot before it, whose clip it continues). Two
runs of a film that agree on a shot share that shot's job, so it is never paid for twice.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from inbetween.domain.drops import INPUT_NAMES, JOB_FIELDS, parse_job_json
from inbetween.domain.models import ErrorInfo, InputObject, JobSpec, plain
from inbetween.errors import InvalidJob

FILM_JSON = "film.json"
MIN_KEYFRAMES = 2
MAX_KEYFRAMES = 50
MAX_FILM_JSON_BYTES = 256 * 1024
MAX_SEAM_FRAMES = 15  # half a second at 30 fps: a blend longer than that is a transition, not a seam
# continue mode: a shot continues the last seconds of the shot before (the provider's first_clip, 2-10 s
# long). The shortest clip the provider takes: the continuation is billed for its whole length, input
# clip included, so every continued shot costs these seconds on top of its own.
CONTINUE_TAIL_S = 2
IMAGE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "webp", "bmp"})
# a name that ends in a number: "01", "frame_002", "kf-3", "shot 4"
_NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<number>\d+)$")
# what every shot may set, in the film's defaults or its own override (job.json's fields but the
# film-wide ones: one model and one resolution per film, one webhook for the film's events)
SHOT_FIELDS = {
    name: types
    for name, types in JOB_FIELDS.items()
    # a film's events go to its webhook under the deployment's webhook_events
    if name not in ("model", "resolution", "webhook_url", "webhook_events")
}
FILM_FIELDS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "resolution": (str,),
    "mode": (str,),
    "seam": (int,),
    "shot_events": (bool,),
    "webhook_url": (str,),
    "defaults": (dict,),
    "shots": (dict,),
}


class FilmMode(StrEnum):
    INDEPENDENT = "independent"  # every shot from its two keyframes, all at once within the quota
    CONTINUE = "continue"  # wan2.7: each shot continues the previous shot's clip toward its keyframe


@dataclass(frozen=True, slots=True)
class Keyframe:
    number: int
    filename: str
    etag: str


@dataclass(frozen=True, slots=True)
class FilmOptions:
    """film.json, checked for shape (the model's own rules are checked per shot before paying)."""

    model: str | None = None
    resolution: str | None = None
    mode: FilmMode = FilmMode.INDEPENDENT
    seam: int = 0
    shot_events: bool = False
    webhook_url: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    shots: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShotPlan:
    """One shot: keyframe ``first`` to keyframe ``last``, with the fields a job.json would hold."""

    index: int  # 1-based position in the film
    first: Keyframe
    last: Keyframe
    fields: dict[str, Any]  # model, resolution and the shot's options, as job.json fields
    digest: str  # the shot's identity: keyframes' content, options, and (continue) the shot before

    @property
    def number(self) -> int:
        """The number of the shot's first keyframe: how film.json and prompt files name the shot."""
        return self.first.number


class FilmStatus(StrEnum):
    RUNNING = "RUNNING"  # its shots are being made (or reused)
    STITCHING = "STITCHING"  # every shot stored: the stitch function is joining them
    STORED = "STORED"  # film.mp4, its poster and contact sheet are stored and verified
    FAILED = "FAILED"  # a shot failed, or the stitch did (the error names which)
    REJECTED = "REJECTED"  # the folder was refused before anything was paid for
    CANCELED = "CANCELED"  # cancelled: its unstarted shots withdrawn, its running ones let finish

    @property
    def is_final(self) -> bool:
        return self in (FilmStatus.STORED, FilmStatus.FAILED, FilmStatus.REJECTED, FilmStatus.CANCELED)


@dataclass(frozen=True, slots=True)
class PendingShot:
    """A continued shot not yet made (continue mode): its job is created once the shot before it is
    stored and its tail cut, from what intake checked and recorded here."""

    spec: JobSpec  # its duration counts the continued tail (CONTINUE_TAIL_S) as the provider bills it
    last: InputObject  # the keyframe it ends on

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "last": self.last.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingShot:
        return cls(JobSpec.from_dict(dict(data["spec"])), InputObject.from_dict(dict(data["last"])))


@dataclass(frozen=True, slots=True)
class ShotRef:
    """A film run's shot: its place, its keyframes' numbers and the (possibly shared) job that makes it."""

    index: int
    number: int  # the number of its first keyframe
    last_number: int
    job_id: str
    pending: PendingShot | None = None  # continue mode: how to make the job when its turn comes

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "index": self.index,
            "number": self.number,
            "last_number": self.last_number,
            "job_id": self.job_id,
        }
        if self.pending is not None:
            item["pending"] = self.pending.to_dict()
        return item

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShotRef:
        pending = data.get("pending")
        return cls(
            int(data["index"]),
            int(data["number"]),
            int(data["last_number"]),
            str(data["job_id"]),
            PendingShot.from_dict(pending) if pending else None,
        )


@dataclass(frozen=True, slots=True)
class FilmRun:
    """One run of a film folder, as the jobs table holds it: ``run_id`` is ``<film>/<film digest>``."""

    run_id: str
    film: str
    status: FilmStatus
    shots: tuple[ShotRef, ...]
    created_at: float
    updated_at: float
    seam: int = 0
    mode: FilmMode = FilmMode.INDEPENDENT
    shot_events: bool = False
    webhook_url: str | None = None
    keyframes: tuple[str, ...] = ()  # the keyframes' S3 keys, in order (the stitch verifies the seams)
    size: tuple[int, int] | None = None  # every shot's output size (the first keyframe's)
    error: ErrorInfo | None = None
    finished_at: float | None = None
    video_key: str | None = None
    video_bytes: int | None = None
    frames: int | None = None
    duration_s: float | None = None
    notified_at: float | None = None
    notify_claimed_until: float | None = None
    # cancel: when it was asked and by which way ("inbox": its keyframes deleted; "cli")
    cancel_requested_at: float | None = None
    cancel_source: str | None = None

    @property
    def digest(self) -> str:
        return self.run_id.rsplit("/", 1)[-1]

    def to_item(self) -> dict[str, Any]:
        """The table item's attributes (no key, no due fields: the store adds those). None is left out."""
        item: dict[str, Any] = {
            "run_id": self.run_id,
            "film": self.film,
            "status": self.status.value,
            "shots": [shot.to_dict() for shot in self.shots],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "seam": self.seam,
            "mode": self.mode.value,
            "shot_events": self.shot_events,
            "webhook_url": self.webhook_url,
            "keyframes": list(self.keyframes) or None,
            "size": list(self.size) if self.size else None,
            "error": self.error.to_dict() if self.error else None,
            "finished_at": self.finished_at,
            "video_key": self.video_key,
            "video_bytes": self.video_bytes,
            "frames": self.frames,
            "duration_s": self.duration_s,
            "notified_at": self.notified_at,
            "notify_claimed_until": self.notify_claimed_until,
            "cancel_requested_at": self.cancel_requested_at,
            "cancel_source": self.cancel_source,
        }
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> FilmRun:
        data = plain(dict(item))

        def number(name: str, kind: type) -> Any:
            value = data.get(name)
            return None if value is None else kind(value)

        return cls(
            run_id=str(data["run_id"]),
            film=str(data["film"]),
            status=FilmStatus(data["status"]),
            shots=tuple(ShotRef.from_dict(s) for s in data.get("shots") or ()),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            seam=int(data.get("seam", 0)),
            mode=FilmMode(data.get("mode", FilmMode.INDEPENDENT.value)),
            shot_events=bool(data.get("shot_events", False)),
            webhook_url=data.get("webhook_url"),
            keyframes=tuple(data.get("keyframes") or ()),
            size=(int(data["size"][0]), int(data["size"][1])) if data.get("size") else None,
            error=ErrorInfo.from_dict(data.get("error")),
            finished_at=number("finished_at", float),
            video_key=data.get("video_key"),
            video_bytes=number("video_bytes", int),
            frames=number("frames", int),
            duration_s=number("duration_s", float),
            notified_at=number("notified_at", float),
            notify_claimed_until=number("notify_claimed_until", float),
            cancel_requested_at=number("cancel_requested_at", float),
            cancel_source=data.get("cancel_source"),
        )


# what a film run's state change may set
FILM_SETTABLE_FIELDS = frozenset(FilmRun.__dataclass_fields__) - {
    "run_id",
    "film",
    "status",
    "updated_at",
    "shots",
}


def is_film_file(filename: str) -> bool:
    """A file a film folder is made of: film.json, a numbered image (a keyframe) or a numbered prompt."""
    return (
        filename.lower() == FILM_JSON
        or keyframe_number(filename) is not None
        or prompt_file_stem(filename) is not None
    )


def is_film_folder(filenames: list[str]) -> bool:
    """A folder is a film if it holds film.json or a numbered image, and no job input (first.*, ...)."""
    lowered = [name.lower() for name in filenames]
    if any(name.partition(".")[0] in INPUT_NAMES and "." in name for name in lowered):
        return False
    return FILM_JSON in lowered or any(keyframe_number(name) is not None for name in filenames)


def keyframe_number(filename: str) -> int | None:
    """``frame_002.jpg`` -> 2; None for a name that is not a numbered image."""
    stem, dot, suffix = filename.rpartition(".")
    if not dot or suffix.lower() not in IMAGE_SUFFIXES:
        return None
    match = _NUMBERED.match(stem)
    return int(match["number"]) if match else None


def prompt_file_stem(filename: str) -> str | None:
    """``03.txt`` -> ``03``: a prompt file names the keyframe its shot starts at by that keyframe's stem."""
    stem, dot, suffix = filename.rpartition(".")
    return stem if dot and suffix.lower() == "txt" and _NUMBERED.match(stem) else None


def order_keyframes(files: Mapping[str, str]) -> list[Keyframe]:
    """The keyframes of a folder (filename -> etag), ordered by number; a repeated number, or too few
    or too many keyframes, is refused naming the files."""
    by_number: dict[int, Keyframe] = {}
    for filename, etag in sorted(files.items()):
        number = keyframe_number(filename)
        if number is None:
            continue
        if number in by_number:
            raise InvalidJob(
                f"keyframes {by_number[number].filename} and {filename} have the same number ({number})",
                code="RepeatedKeyframeNumber",
                hint="give every keyframe its own number; the numbers set the order (gaps are fine)",
                field=filename,
            )
        by_number[number] = Keyframe(number, filename, etag.strip('"'))
    keyframes = [by_number[n] for n in sorted(by_number)]
    if len(keyframes) < MIN_KEYFRAMES:
        raise InvalidJob(
            f"a film needs at least {MIN_KEYFRAMES} numbered keyframes; the folder has {len(keyframes)}",
            code="TooFewKeyframes",
            hint="add keyframes named by number (01.png, 02.png, ...); for one shot from one frame, "
            "use first.png (and last.png) instead",
            field="keyframes",
        )
    if len(keyframes) > MAX_KEYFRAMES:
        raise InvalidJob(
            f"a film takes at most {MAX_KEYFRAMES} keyframes; the folder has {len(keyframes)}",
            code="TooManyKeyframes",
            hint=f"split the sequence into films of up to {MAX_KEYFRAMES} keyframes",
            field="keyframes",
        )
    return keyframes


def parse_film_json(raw: bytes) -> FilmOptions:
    if len(raw) > MAX_FILM_JSON_BYTES:
        raise _film_error(f"film.json is {len(raw)} bytes; the limit is {MAX_FILM_JSON_BYTES}", "film.json")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _film_error("film.json is not UTF-8 text", "film.json") from None
    except json.JSONDecodeError as exc:
        raise _film_error(
            f"film.json is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", "film.json"
        ) from None
    if not isinstance(data, dict):
        raise _film_error("film.json must be a JSON object", "film.json")
    _check_fields(data, FILM_FIELDS, where="film.json")
    mode = data.get("mode", FilmMode.INDEPENDENT.value)
    if mode not in {m.value for m in FilmMode}:
        raise _film_error(f"film.json mode must be 'independent' or 'continue', got {mode!r}", "mode")
    seam = data.get("seam", 0)
    if not 0 <= seam <= MAX_SEAM_FRAMES:
        raise _film_error(f"film.json seam must be 0 to {MAX_SEAM_FRAMES} frames, got {seam}", "seam")
    defaults = _shot_fields(data.get("defaults") or {}, where="defaults")
    shots: dict[int, dict[str, Any]] = {}
    for key, override in (data.get("shots") or {}).items():
        if not str(key).isdigit():
            raise _film_error(
                f"film.json shots are named by the number of their first keyframe; {key!r} is not a number",
                f"shots.{key}",
            )
        if not isinstance(override, dict):
            raise _film_error(f"film.json shots.{key} must be an object", f"shots.{key}")
        shots[int(key)] = _shot_fields(override, where=f"shots.{key}")
    return FilmOptions(
        model=data.get("model"),
        resolution=data.get("resolution"),
        mode=FilmMode(mode),
        seam=seam,
        shot_events=bool(data.get("shot_events", False)),
        webhook_url=data.get("webhook_url"),
        defaults=defaults,
        shots=shots,
    )


def plan_shots(keyframes: list[Keyframe], options: FilmOptions, prompts: Mapping[int, str]) -> list[ShotPlan]:
    """The film's shots: keyframe k to k+1, each with the film's model and resolution, the defaults,
    its prompt file and its own override (in that order, the later winning)."""
    numbers = {k.number for k in keyframes[:-1]}
    for number in sorted(set(options.shots) - numbers):
        final = keyframes[-1].number
        why = "the last keyframe starts no shot" if number == final else "no keyframe has that number"
        raise _film_error(f"film.json shots.{number} names no shot ({why})", f"shots.{number}")
    for number in sorted(set(prompts) - numbers):
        raise InvalidJob(
            f"a prompt file for keyframe {number} names no shot (the last keyframe starts none)"
            if number == keyframes[-1].number
            else f"a prompt file names keyframe {number}, which is not in the folder",
            code="InvalidFilm",
            hint="name a shot's prompt file after its first keyframe (03.txt for the shot from 03.png)",
            field=f"{number}.txt",
        )
    plans: list[ShotPlan] = []
    previous = ""
    for index, (first, last) in enumerate(zip(keyframes, keyframes[1:], strict=False), start=1):
        fields: dict[str, Any] = {"model": options.model, "resolution": options.resolution}
        fields.update(options.defaults)
        if first.number in prompts:
            fields["prompt"] = prompts[first.number]
        fields.update(options.shots.get(first.number, {}))
        fields = {k: v for k, v in fields.items() if v is not None}
        chained = previous if options.mode is FilmMode.CONTINUE else ""
        digest = shot_digest(first.etag, last.etag, fields, chained)
        plans.append(ShotPlan(index, first, last, fields, digest))
        previous = digest
    return plans


def shot_digest(first_etag: str, last_etag: str, fields: Mapping[str, Any], previous: str = "") -> str:
    """A shot's identity: what the provider is asked to make (the two keyframes' content, the options),
    and in continue mode the shot it continues. Not its position: a renumbered keyframe keeps its shots."""
    canonical = json.dumps(
        {"first": first_etag, "last": last_etag, "fields": dict(fields), "continues": previous},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def film_digest(shots: list[ShotPlan], options: FilmOptions) -> str:
    """A film run's identity: its shots in order and how they are joined."""
    canonical = json.dumps(
        {"shots": [s.digest for s in shots], "seam": options.seam, "mode": options.mode.value},
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _shot_fields(data: dict[str, Any], *, where: str) -> dict[str, Any]:
    _check_fields(data, SHOT_FIELDS, where=f"film.json {where}")
    # the same checks as job.json (types, unknown names), on the shot's own fields
    checked = parse_job_json(json.dumps(data).encode())
    return checked


def _check_fields(data: dict[str, Any], allowed: Mapping[str, tuple[type, ...]], *, where: str) -> None:
    for name, value in data.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            prefix = where.removeprefix("film.json").strip()
            raise _film_error(
                f"{where} has an unknown field {name!r}{suggestion}",
                f"{prefix}.{name}" if prefix else name,
                hint="allowed fields: " + ", ".join(allowed),
            )
        types = allowed[name]
        if value is not None and (
            not isinstance(value, types) or (bool not in types and isinstance(value, bool))
        ):
            prefix = where.removeprefix("film.json").strip()
            raise _film_error(
                f"{where} field {name!r} must be {_kind(types)}, got {type(value).__name__}",
                f"{prefix}.{name}" if prefix else name,
            )


def _kind(types: tuple[type, ...]) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", dict: "an object"}[types[0]]


def _film_error(message: str, field_name: str, *, hint: str | None = None) -> InvalidJob:
    return InvalidJob(
        message,
        code="InvalidFilmJson",
        hint=hint or "fix film.json; see README (Storyboards) for its fields",
        field=field_name,
    )
