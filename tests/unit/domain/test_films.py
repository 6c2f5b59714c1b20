"""The storyboard convention (inbetween.domain.films): which folders are films, the keyframes' order,
film.json, and each shot's content-derived identity."""

from __future__ import annotations

import json

import pytest
from inbetween.domain.films import (
    FilmMode,
    film_digest,
    is_film_folder,
    keyframe_number,
    order_keyframes,
    parse_film_json,
    plan_shots,
    prompt_file_stem,
)
from inbetween.errors import InvalidJob


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("01.png", 1),
        ("frame_002.jpg", 2),
        ("kf-3.webp", 3),
        ("shot 12.JPEG", 12),
        ("7.bmp", 7),
        ("first.png", None),
        ("01.txt", None),
        ("film.json", None),
        ("12-draft.png", None),
        ("notes.png", None),
    ],
)
def test_a_keyframe_is_an_image_whose_name_ends_in_a_number(name, number):
    assert keyframe_number(name) == number


def test_a_folder_with_a_job_input_is_a_job_even_beside_numbered_images():
    assert is_film_folder(["01.png", "02.png"])
    assert is_film_folder(["film.json"])  # keyframes may still be on their way
    assert not is_film_folder(["first.png", "01.png", "02.png"])
    assert not is_film_folder(["last.jpg", "film.json"])
    assert not is_film_folder(["job.json", "prompt.txt"])


def test_keyframes_are_ordered_by_their_number_with_gaps_allowed():
    frames = order_keyframes({"kf-10.png": '"e10"', "frame_2.jpg": "e2", "03.webp": "e3", "notes.txt": "x"})
    assert [(k.number, k.filename, k.etag) for k in frames] == [
        (2, "frame_2.jpg", "e2"),
        (3, "03.webp", "e3"),
        (10, "kf-10.png", "e10"),
    ]


def test_a_repeated_number_is_refused_naming_both_files():
    with pytest.raises(InvalidJob) as raised:
        order_keyframes({"01.png": "a", "1.jpg": "b", "02.png": "c"})
    assert raised.value.code == "RepeatedKeyframeNumber"
    assert "01.png" in raised.value.message and "1.jpg" in raised.value.message


@pytest.mark.parametrize(("count", "code"), [(1, "TooFewKeyframes"), (51, "TooManyKeyframes")])
def test_a_film_takes_two_to_fifty_keyframes(count, code):
    with pytest.raises(InvalidJob) as raised:
        order_keyframes({f"{i:02d}.png": f"e{i}" for i in range(1, count + 1)})
    assert raised.value.code == code and raised.value.field == "keyframes"
    assert len(order_keyframes({f"{i:02d}.png": f"e{i}" for i in range(1, 51)})) == 50


def test_a_prompt_file_names_its_keyframe_by_stem():
    assert prompt_file_stem("03.txt") == "03"
    assert prompt_file_stem("frame_004.TXT") == "frame_004"
    assert prompt_file_stem("prompt.txt") is None


def film(**data) -> bytes:
    return json.dumps(data).encode()


def test_film_json_sets_the_films_options_and_each_shots():
    options = parse_film_json(
        film(
            model="wan2.7-i2v",
            resolution="720P",
            mode="continue",
            seam=4,
            shot_events=True,
            defaults={"prompt": "the camera glides", "duration": 3},
            shots={"3": {"duration": 6, "prompt": "a slow zoom"}},
        )
    )
    assert (options.model, options.resolution, options.mode, options.seam, options.shot_events) == (
        "wan2.7-i2v",
        "720P",
        FilmMode.CONTINUE,
        4,
        True,
    )
    assert options.defaults == {"prompt": "the camera glides", "duration": 3}
    assert options.shots == {3: {"duration": 6, "prompt": "a slow zoom"}}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"modle": "wan2.7-i2v"}, "modle"),
        ({"seam": 40}, "seam"),
        ({"seam": "2"}, "seam"),
        ({"mode": "chain"}, "mode"),
        ({"defaults": {"duraton": 4}}, "defaults.duraton"),
        ({"defaults": {"duration": "4"}}, "defaults.duration"),
        ({"defaults": {"model": "wan2.7-i2v"}}, "defaults.model"),  # one model per film
        ({"shots": {"two": {}}}, "shots.two"),
        ({"shots": {"2": "fast"}}, "shots.2"),
        ({"shots": {"2": {"seed": 1.5}}}, "shots.2.seed"),
    ],
)
def test_film_json_errors_name_the_field(data, field):
    with pytest.raises(InvalidJob) as raised:
        parse_film_json(film(**data))
    assert raised.value.code == "InvalidFilmJson"
    assert raised.value.field == field, raised.value.message


def test_film_json_that_is_not_an_object_is_refused():
    for raw in (b"[1, 2]", b"{nope", b"\xff\xfe"):
        with pytest.raises(InvalidJob) as raised:
            parse_film_json(raw)
        assert raised.value.field == "film.json"


KEYFRAMES = {f"{n:02d}.png": f"etag-{n}" for n in (1, 2, 4, 5)}


def test_shot_k_goes_from_keyframe_k_to_the_next_with_defaults_prompt_file_and_override_in_order():
    options = parse_film_json(
        film(
            model="wan2.7-i2v", defaults={"prompt": "default", "duration": 3}, shots={"4": {"prompt": "own"}}
        )
    )
    shots = plan_shots(order_keyframes(KEYFRAMES), options, {2: "from 02.txt"})
    assert [(s.index, s.first.number, s.last.number) for s in shots] == [(1, 1, 2), (2, 2, 4), (3, 4, 5)]
    assert [s.fields["prompt"] for s in shots] == ["default", "from 02.txt", "own"]
    assert all(s.fields["duration"] == 3 and s.fields["model"] == "wan2.7-i2v" for s in shots)
    assert "resolution" not in shots[0].fields  # unset: the deployment's default applies


def test_an_override_or_prompt_file_for_no_shot_is_refused():
    keyframes = order_keyframes(KEYFRAMES)
    with pytest.raises(InvalidJob) as raised:
        plan_shots(keyframes, parse_film_json(film(shots={"5": {"prompt": "x"}})), {})
    assert raised.value.field == "shots.5" and "last keyframe" in raised.value.message
    with pytest.raises(InvalidJob) as raised:
        plan_shots(keyframes, parse_film_json(film(shots={"3": {"prompt": "x"}})), {})
    assert raised.value.field == "shots.3"
    with pytest.raises(InvalidJob) as raised:
        plan_shots(keyframes, parse_film_json(b"{}"), {9: "nine"})
    assert raised.value.field == "9.txt"


def _digests(files, options=b"{}", prompts=None):
    return [s.digest for s in plan_shots(order_keyframes(files), parse_film_json(options), prompts or {})]


def test_changing_one_keyframe_changes_only_the_shots_that_touch_it():
    before = _digests(KEYFRAMES)
    after = _digests({**KEYFRAMES, "04.png": "etag-4-new"})
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, False, False]


def test_changing_one_shots_options_changes_only_that_shot():
    before = _digests(KEYFRAMES, film(defaults={"prompt": "p"}))
    after = _digests(KEYFRAMES, film(defaults={"prompt": "p"}, shots={"2": {"seed": 7}}))
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, False, True]


def test_renumbering_keeps_a_shots_identity_its_content():
    renumbered = {"10.png": "etag-1", "20.png": "etag-2", "40.png": "etag-4", "50.png": "etag-5"}
    assert _digests(renumbered) == _digests(KEYFRAMES)


def test_in_continue_mode_a_change_reaches_every_later_shot():
    mode = film(mode="continue")
    before = _digests(KEYFRAMES, mode)
    after = _digests({**KEYFRAMES, "02.png": "etag-2-new"}, mode)
    assert [b == a for b, a in zip(before, after, strict=True)] == [False, False, False]
    # and a continue film's shots differ from the same shots made independently
    assert _digests(KEYFRAMES, mode)[1:] != _digests(KEYFRAMES)[1:]


def test_a_film_runs_identity_is_its_shots_and_how_they_are_joined():
    keyframes = order_keyframes(KEYFRAMES)
    plain, blended = parse_film_json(b"{}"), parse_film_json(film(seam=3))
    shots = plan_shots(keyframes, plain, {})
    assert film_digest(shots, plain) == film_digest(plan_shots(keyframes, plain, {}), plain)
    assert film_digest(shots, plain) != film_digest(shots, blended)
