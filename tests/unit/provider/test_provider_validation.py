"""Pre-flight checks: each bad parameter and each bad image kind is refused with its own code and a hint."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from inbetween.domain import catalog
from inbetween.domain.catalog import IMAGE_LIMITS
from inbetween.errors import InvalidImage, InvalidJob
from inbetween.provider import CreateTaskRequest, ImageInfo, data_uri, inspect_image, validate_request
from PIL import Image
from provider_fakes import frame, never_called, png_header_only

FIRST = "https://example.com/first.png"
LAST = "https://example.com/last.png"
GOOD = CreateTaskRequest(
    model="wan2.2-kf2v-flash", first_frame_url=FIRST, last_frame_url=LAST, prompt="a cat"
)


# -- requests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        GOOD,
        dataclasses.replace(
            GOOD, resolution="1080P", seed=catalog.SEED_MAX, prompt_extend=False, watermark=True
        ),
        dataclasses.replace(GOOD, model="wanx2.1-kf2v-plus", resolution="720P"),
        # the Singapore spelling of the 2.1 model
        dataclasses.replace(GOOD, model="wan2.1-kf2v-plus"),
        CreateTaskRequest(model="wanx2.1-kf2v-plus", first_frame_url=FIRST, template="mech1"),
        dataclasses.replace(GOOD, prompt="字" * 800, negative_prompt="n" * 500, seed=0),
        dataclasses.replace(
            GOOD, first_frame_url="data:image/png;base64,iVBORw0KGgo=", last_frame_url="HTTP://x.y/z"
        ),
        # the provider's temporary upload (the guide's file:// flow), sent with the resolve header
        dataclasses.replace(GOOD, first_frame_url="oss://dashscope-instant/a.png"),
    ],
    ids=lambda r: f"{r.model}-{r.resolution}-{r.template}",
)
def test_valid_requests_pass(request_):
    validate_request(request_)


BAD_REQUESTS = [
    ("UnknownModel", "model", dataclasses.replace(GOOD, model="wan2.5-i2v-preview")),
    (
        "UnsupportedResolution",
        "resolution",
        dataclasses.replace(GOOD, model="wanx2.1-kf2v-plus", resolution="1080P"),
    ),
    ("UnsupportedResolution", "resolution", dataclasses.replace(GOOD, resolution="720p")),
    ("UnsupportedDuration", "duration", dataclasses.replace(GOOD, duration=10)),
    ("UnsupportedDuration", "duration", dataclasses.replace(GOOD, duration=True)),
    (
        "TemplateNotSupported",
        "template",
        CreateTaskRequest(model="wan2.2-kf2v-flash", first_frame_url=FIRST, template="mech1"),
    ),
    (
        "UnknownTemplate",
        "template",
        CreateTaskRequest(model="wanx2.1-kf2v-plus", first_frame_url=FIRST, template="hufu-1"),
    ),
    (
        "TemplateWithLastFrame",
        "last_frame_url",
        dataclasses.replace(GOOD, model="wanx2.1-kf2v-plus", template="mech1"),
    ),
    ("MissingLastFrame", "last_frame_url", dataclasses.replace(GOOD, last_frame_url=None)),
    ("MissingFrame", "first_frame_url", dataclasses.replace(GOOD, first_frame_url="")),
    ("MissingFrame", "last_frame_url", dataclasses.replace(GOOD, last_frame_url="")),
    ("PromptTooLong", "prompt", dataclasses.replace(GOOD, prompt="x" * 801)),
    ("NegativePromptTooLong", "negative_prompt", dataclasses.replace(GOOD, negative_prompt="x" * 501)),
    ("InvalidSeed", "seed", dataclasses.replace(GOOD, seed=-1)),
    ("InvalidSeed", "seed", dataclasses.replace(GOOD, seed=2_147_483_648)),
    ("InvalidSeed", "seed", dataclasses.replace(GOOD, seed=True)),
    ("InvalidSeed", "seed", dataclasses.replace(GOOD, seed=1.5)),
    ("InvalidFlag", "prompt_extend", dataclasses.replace(GOOD, prompt_extend="yes")),
    ("InvalidFlag", "watermark", dataclasses.replace(GOOD, watermark=1)),
    (
        "InvalidFrameUrl",
        "first_frame_url",
        dataclasses.replace(GOOD, first_frame_url="file:///tmp/first.png"),
    ),
    # an oss:// temporary upload needs a bucket and a key (a well-formed one is valid: see
    # test_valid_requests_pass, and the client's resolve header in test_provider_wan27.py)
    (
        "InvalidFrameUrl",
        "first_frame_url",
        dataclasses.replace(GOOD, first_frame_url="oss://dashscope-instant"),
    ),
    ("InvalidFrameUrl", "first_frame_url", dataclasses.replace(GOOD, first_frame_url="oss:///a.png")),
    ("InvalidFrameUrl", "first_frame_url", dataclasses.replace(GOOD, first_frame_url="/tmp/first.png")),
    ("InvalidFrameUrl", "last_frame_url", dataclasses.replace(GOOD, last_frame_url="https:///no-host.png")),
    (
        "InvalidFrameUrl",
        "last_frame_url",
        dataclasses.replace(GOOD, last_frame_url="data:text/plain;base64,aGk="),
    ),
    (
        "InvalidFrameUrl",
        "last_frame_url",
        dataclasses.replace(GOOD, last_frame_url="data:image/png,rawbytes"),
    ),
]


@pytest.mark.parametrize(
    ("code", "field", "request_"), BAD_REQUESTS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BAD_REQUESTS)]
)
def test_bad_requests_are_refused_with_a_code_and_an_action(code, field, request_):
    with pytest.raises(InvalidJob) as caught:
        validate_request(request_)
    error = caught.value
    assert (error.code, error.field) == (code, field)
    assert error.hint and error.hint in str(error)
    assert not error.retryable


def test_resolution_message_names_what_to_use():
    with pytest.raises(InvalidJob) as caught:
        validate_request(dataclasses.replace(GOOD, model="wanx2.1-kf2v-plus", resolution="1080P"))
    assert str(caught.value) == "resolution '1080P' is not offered by wanx2.1-kf2v-plus; use one of: 720P"


def test_a_refused_request_never_reaches_the_network(make_client):
    # Given a client whose transport fails the test if it is ever called
    client = make_client(never_called)
    # When an invalid request is submitted, Then it is refused before sending
    with pytest.raises(InvalidJob) as caught:
        client.create_task(dataclasses.replace(GOOD, resolution="4K"))
    assert caught.value.code == "UnsupportedResolution"


def test_data_uri_type_must_match_the_inspected_frame():
    png = frame("PNG")
    info = inspect_image(png)
    uri = data_uri(png, info)
    validate_request(dataclasses.replace(GOOD, first_frame_url=uri), first=info)
    wrong = uri.replace("image/png", "image/jpeg", 1)
    with pytest.raises(InvalidJob) as caught:
        validate_request(dataclasses.replace(GOOD, first_frame_url=wrong), first=info)
    assert caught.value.code == "FrameTypeMismatch"


# -- images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [
        ("JPEG", "RGB", "image/jpeg"),
        ("PNG", "RGB", "image/png"),
        ("PNG", "L", "image/png"),
        ("BMP", "RGB", "image/bmp"),
        ("WEBP", "RGB", "image/webp"),
    ],
)
def test_supported_frames_are_described(fmt, mode, mime):
    data = frame(fmt, (750, 1000), mode)
    info = inspect_image(data, name="first frame")
    assert info == ImageInfo(format=fmt, width=750, height=1000, size_bytes=len(data), mime=mime)


def test_multi_picture_jpeg_from_a_camera_counts_as_jpeg():
    extra = Image.new("RGB", (320, 240), "red")
    data = frame("MPO", (320, 240), save_all=True, append_images=[extra])
    assert Image.open(__import__("io").BytesIO(data)).format == "MPO"
    info = inspect_image(data)
    assert (info.format, info.mime) == ("JPEG", "image/jpeg")


def _truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _flip_pixel_data(data: bytes) -> bytes:
    # damage the compressed pixel data of a PNG (its CRC no longer matches)
    at = data.index(b"IDAT") + 20
    return data[:at] + bytes(b ^ 0xFF for b in data[at : at + 8]) + data[at + 8 :]


BAD_IMAGES = [
    ("EmptyImage", lambda: b""),
    ("NotAnImage", lambda: b"GIF? no, just some text that is not an image at all"),
    ("NotAnImage", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 300 300\n"),
    ("UnsupportedImageFormat", lambda: frame("GIF", mode="P")),
    ("UnsupportedImageFormat", lambda: frame("TIFF")),
    ("ImageHasAlpha", lambda: frame("PNG", mode="RGBA")),
    ("ImageHasAlpha", lambda: frame("PNG", mode="LA")),
    ("ImageHasAlpha", lambda: frame("PNG", mode="P", transparency=0)),
    ("ImageHasAlpha", lambda: frame("WEBP", mode="RGBA")),
    ("ImageTooSmall", lambda: frame("PNG", (239, 600))),
    ("ImageTooLarge", lambda: frame("PNG", (8001, 240), mode="L")),
    ("ImageFileTooLarge", lambda: b"\xff\xd8\xff" + b"\x00" * IMAGE_LIMITS.max_bytes),
    ("CorruptImage", lambda: _truncated(frame("JPEG", (800, 600), quality=95))),
    ("CorruptImage", lambda: _truncated(frame("PNG", (800, 600)))),
    ("CorruptImage", lambda: _flip_pixel_data(frame("PNG", (800, 600)))),
    ("CorruptImage", lambda: png_header_only(1000, 1000)),
    ("DecompressionBomb", lambda: png_header_only(20_000, 20_000)),
    ("DecompressionBomb", lambda: png_header_only(9_000, 9_000)),
]


@pytest.mark.parametrize(
    ("code", "make"), BAD_IMAGES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD_IMAGES)]
)
def test_bad_frames_are_refused_with_a_code_and_a_hint(code, make):
    with pytest.raises(InvalidImage) as caught:
        inspect_image(make(), name="last frame")
    error = caught.value
    assert error.code == code
    assert error.hint
    assert error.field == "last frame" and str(error).startswith("last frame")


def test_file_size_is_checked_before_anything_is_parsed(monkeypatch):
    # Given Pillow would blow up if it were asked to open anything
    def explode(*args, **kwargs):
        raise AssertionError("decoded a file that was already too large")

    monkeypatch.setattr(Image, "open", explode)
    with pytest.raises(InvalidImage) as caught:
        inspect_image(b"x" * 2048, limits=catalog.ImageLimits(max_bytes=1024))
    assert caught.value.code == "ImageFileTooLarge"


def test_a_pillow_bomb_warning_is_treated_as_a_bomb(monkeypatch):
    # Given Pillow's own threshold lower than the frame (it warns, it does not raise)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300)
    with pytest.raises(InvalidImage) as caught:
        inspect_image(frame("PNG", (320, 320)))
    assert caught.value.code == "DecompressionBomb"


def test_alpha_is_accepted_when_the_limits_allow_it():
    info = inspect_image(
        frame("PNG", mode="RGBA"), limits=dataclasses.replace(IMAGE_LIMITS, alpha_allowed=True)
    )
    assert info.format == "PNG"


def test_strict_limits_profile_refuses_sides_the_newest_accepts():
    data = frame("PNG", (2400, 400), mode="L")
    assert inspect_image(data).width == 2400
    with pytest.raises(InvalidImage) as caught:
        inspect_image(data, limits=catalog.STRICT_IMAGE_LIMITS)
    assert caught.value.code == "ImageTooLarge"


def test_data_uri_round_trip():
    data = frame("JPEG", (640, 480))
    info = inspect_image(data)
    uri = data_uri(data, info)
    header, encoded = uri.split(",", 1)
    assert header == "data:image/jpeg;base64"
    assert base64.b64decode(encoded) == data
    assert inspect_image(base64.b64decode(encoded)) == info
    validate_request(
        dataclasses.replace(GOOD, first_frame_url=uri, last_frame_url=uri), first=info, last=info
    )


def test_output_size_follows_the_guides_example():
    assert catalog.output_size(750, 1000, "720P") == (816, 1104)
