"""The drop-folder convention and job identity."""

from __future__ import annotations

import pytest
from inbetween.domain.drops import build_spec, check_job_name, parse_job_json, parse_key, run_digest
from inbetween.errors import InvalidJob


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("inbox/shot/first.png", ("shot", "first")),
        ("inbox/shot/LAST.JPG", ("shot", "last")),
        ("inbox/shot/job.json", ("shot", "job.json")),
        ("inbox/shot/prompt.txt", ("shot", "prompt.txt")),
        ("inbox/shot/error.json", ("shot", None)),
        ("inbox/shot/first.tar.gz", ("shot", None)),
        ("inbox/shot/.DS_Store", ("shot", None)),
    ],
)
def test_keys_in_a_job_folder_have_roles(key, expected):
    drop = parse_key(key)
    assert (drop.job_name, drop.role) == expected


@pytest.mark.parametrize(
    "key", ["inbox/first.png", "inbox/a/b/first.png", "outbox/a/first.png", "inbox//first.png"]
)
def test_keys_outside_the_convention_are_ignored(key):
    assert parse_key(key) is None


def test_the_same_files_give_the_same_run_and_a_changed_file_a_new_one():
    files = {"first": ("first.png", '"aaa"'), "last": ("last.png", "bbb")}
    assert run_digest(files) == run_digest(dict(reversed(list(files.items()))))
    assert run_digest(files) == run_digest({"first": ("first.png", "aaa"), "last": ("last.png", "bbb")})
    assert run_digest(files) != run_digest({"first": ("first.png", "aaa"), "last": ("last.png", "ccc")})
    assert run_digest(files) != run_digest(dict(files, **{"job.json": ("job.json", "ddd")}))


def test_job_json_unknown_field_suggests_the_right_name():
    with pytest.raises(InvalidJob) as err:
        parse_job_json(b'{"promt": "hello"}')
    assert "did you mean 'prompt'" in err.value.message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b'"text"', "must be a JSON object"),
        (b'{"watermark": "yes"}', "must be true or false"),
        (b'{"seed": true}', "must be an integer"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_job_json_errors_say_what_is_wrong(raw, fragment):
    with pytest.raises(InvalidJob) as err:
        parse_job_json(raw)
    assert fragment in err.value.message
    assert err.value.hint


def test_job_json_overrides_defaults_and_prompt_txt_fills_in():
    defaults = dict(
        default_model="wan2.2-kf2v-flash",
        default_resolution="720P",
        default_prompt_extend=True,
        default_watermark=False,
    )
    spec = build_spec({"resolution": "480P", "watermark": True}, "from prompt.txt", **defaults)
    assert (spec.resolution, spec.watermark, spec.prompt, spec.prompt_extend) == (
        "480P",
        True,
        "from prompt.txt",
        True,
    )
    assert build_spec({"prompt": "json wins"}, "txt", **defaults).prompt == "json wins"
    # the 2.1 model has only 720P: a deployment default it lacks falls back to the model's own
    plus = build_spec({"model": "wanx2.1-kf2v-plus"}, None, **dict(defaults, default_resolution="1080P"))
    assert plus.resolution == "720P"


@pytest.mark.parametrize("name", ["..", ".", "x" * 201, "tab\there"])
def test_unsafe_job_names_are_refused(name):
    with pytest.raises(InvalidJob):
        check_job_name(name)
