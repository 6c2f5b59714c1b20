"""One video's inputs checked before paying (inbetween.usecases.drop_checks.validate_folder), as single
jobs and every shot of a film use it."""

from __future__ import annotations

import pytest
from inbetween.domain.models import JobSpec
from inbetween.errors import InvalidJob
from inbetween.usecases.drop_checks import Folder, validate_folder
from inbetween_local.memory import memory_world
from usecase_kit import drop, frame_png


def _folder(world, files):
    drop(world, "shot", files)
    objects = world.blobs.list_folder(world.deps.settings.inbox_bucket, "inbox/shot/")
    return Folder("shot", {obj.key.rsplit("/", 1)[-1].split(".")[0]: obj for obj in objects}, 0.0)


def test_a_valid_pair_gives_the_videos_size_from_the_first_frame():
    world = memory_world()
    folder = _folder(world, {"first.png": frame_png(size=(320, 240)), "last.png": frame_png(size=(240, 320))})
    size = validate_folder(world.deps, folder, JobSpec(model="wan2.7-i2v", resolution="720P"))
    assert size[0] > size[1]  # the first frame's landscape shape, whatever the last frame's


def test_an_input_the_model_refuses_is_named_and_nothing_is_sent():
    world = memory_world()
    folder = _folder(world, {"first.png": frame_png(), "last.png": b"not an image"})
    with pytest.raises(InvalidJob) as raised:
        validate_folder(world.deps, folder, JobSpec(model="wan2.7-i2v", resolution="720P"))
    assert raised.value.code == "NotAnImage" and "last.png" in raised.value.message
    assert world.provider.created == []
