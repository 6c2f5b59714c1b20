"""What makes a drop acceptable, shared by single jobs (``intake``) and films (``film_intake``): the
intake outcomes, a folder's inputs by role, and the checks of one video's inputs before paying."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from inbetween.deps import Deps
from inbetween.domain.catalog import IMAGE_ROLES, MEDIA_ROLES, ROLE_NOUNS, expected_output_size, model_spec
from inbetween.domain.models import JobSpec, ObjectInfo
from inbetween.errors import InvalidJob
from inbetween.provider.models import CreateTaskRequest
from inbetween.provider.validation import (
    AudioInfo,
    ClipInfo,
    ImageInfo,
    InputInfo,
    inspect_input,
    validate_request,
)

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


def validate_folder(deps: Deps, folder: Folder, spec: JobSpec) -> tuple[int, int]:
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
