"""The rest of the bad-input matrix: odd images, odd keys, odd webhook targets. Each case ends with a
clear error.json and a failure notification (or, where the input is fine, a video), inputs kept, and no
provider call for anything the pipeline can reject itself."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from inbetween.domain.catalog import output_size
from PIL import Image
from pipeline_kit import BLUE, RED, frame_png

# the cases about a kf2v limit name the model: the deployment's default is wan2.7-i2v (20 MB, 2-15 s)
KF2V_JOB = json.dumps({"model": "wan2.2-kf2v-flash"}).encode()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), RED).save(buf, format="GIF")
    return buf.getvalue()


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims 900 Mpx (a few KB on disk): must be refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00" * (width // 8 + 1) * 64)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _expect_rejected(pipeline, name: str, code: str, files: dict[str, bytes]) -> dict:
    item = pipeline.run_until_final(name)
    assert item["status"] == "REJECTED", item.get("error")
    assert item["error"]["code"] == code
    report = pipeline.read_json(pipeline.settings.inbox_bucket, f"inbox/{name}/error.json")
    assert report["error"]["code"] == code and report["what_to_do"]
    notes = pipeline.notifications()
    assert [n["attributes"]["event_type"] for n in notes] == ["video.generation.failed"]
    assert pipeline.emulator.stats.creates_accepted == 0
    kept = {o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=pipeline.settings.inbox_bucket)["Contents"]}
    assert {f"inbox/{name}/{f}" for f in files} <= kept
    return item


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"first.gif": _gif(), "last.png": frame_png(BLUE)}, "UnsupportedImageFormat"),
        ({"first.png": _bomb_png(), "last.png": frame_png(BLUE)}, "DecompressionBomb"),
        ({"first.png": frame_png(RED, (8001, 240)), "last.png": frame_png(BLUE)}, "ImageTooLarge"),
        (
            {
                "first.png": b"\x89PNG" + b"\x00" * (10 * 1024 * 1024 + 1),
                "last.png": frame_png(BLUE),
                "job.json": KF2V_JOB,
            },
            "ImageFileTooLarge",
        ),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b" " * 70000 + b"{}"},
            "InvalidJobJson",
        ),
        ({"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b"[1, 2]"}, "InvalidJobJson"),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b'{"template": "mech1"}'},
            "TemplateNotSupported",
        ),
        (
            {
                "first.png": frame_png(RED),
                "job.json": b'{"model": "wanx2.1-kf2v-plus", "template": "dance9"}',
            },
            "UnknownTemplate",
        ),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b'{"seed": -1}'},
            "InvalidSeed",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"model": "wan2.2-kf2v-flash", "duration": 10}',
            },
            "UnsupportedDuration",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"webhook_url": "https://10.0.0.7/hook"}',
            },
            "UnsafeWebhookUrl",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"webhook_url": "https://100.64.1.1/hook"}',
            },
            "UnsafeWebhookUrl",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"webhook_url": "ftp://example.test/x"}',
            },
            "UnsafeWebhookUrl",
        ),
    ],
    ids=[
        "gif",
        "decompression-bomb",
        "above-size-bounds",
        "above-file-size-limit",
        "job-json-too-large",
        "job-json-not-an-object",
        "template-the-model-lacks",
        "unknown-template",
        "seed-out-of-range",
        "duration-not-5",
        "webhook-private",
        "webhook-carrier-grade-nat",
        "webhook-not-https",
    ],
)
def test_bad_input_more(pipeline, files, code):
    pipeline.drop("bad2", files)
    _expect_rejected(pipeline, "bad2", code, files)


def test_a_webhook_to_loopback_is_refused_in_the_cloud(pipeline, pair):
    # the cloud's settings, and the webhook sender the wiring builds from them (its address policy)
    pipeline.rebuild(allow_local_webhooks=False)
    files = dict(pair, **{"job.json": b'{"webhook_url": "https://127.0.0.1:8443/hook"}'})
    pipeline.drop("loop", files)
    _expect_rejected(pipeline, "loop", "UnsafeWebhookUrl", files)


@pytest.mark.parametrize("name", ["my shot", "ショット-1", "shot+plus", "a%20b"])
def test_keys_with_spaces_unicode_and_escapes_work(pipeline, pair, name):
    pipeline.drop(name, pair)
    item = pipeline.run_until_final(name)
    assert item["status"] == "STORED"
    assert item["video_key"].startswith(f"results/{name}/")


@pytest.mark.parametrize(("name", "code"), [("..", "InvalidJobName"), ("n" * 300, "InvalidJobName")])
def test_unsafe_or_very_long_folder_names_are_rejected(pipeline, pair, name, code):
    pipeline.drop(name, pair)
    _expect_rejected(pipeline, name, code, pair)


def test_frames_of_different_aspect_ratios_follow_the_first_frame(pipeline):
    # documented behaviour: the output keeps the first frame's aspect ratio; the last frame may differ
    pipeline.drop(
        "ratios", {"first.png": frame_png(RED, (480, 270)), "last.png": frame_png(BLUE, (300, 400))}
    )
    item = pipeline.run_until_final("ratios")
    assert item["status"] == "STORED"
    # at the default model's 1080P: 16:9 scaled to 1920x1080, each side down to a multiple of 16
    assert [int(v) for v in item["expected_size"]] == list(output_size(480, 270, "1080P")) == [1920, 1072]


def test_a_webhook_that_redirects_is_not_followed_and_the_video_is_still_stored(pipeline, pair):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(302)
            self.send_header("location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        pipeline.drop("redir", dict(pair, **{"job.json": json.dumps({"webhook_url": url}).encode()}))
        item = pipeline.run_until_final("redir")
        assert item["status"] == "STORED"
        assert hits == ["/hook"]  # one attempt, the redirect not followed (the guard would refuse it anyway)
    finally:
        server.shutdown()
        server.server_close()
