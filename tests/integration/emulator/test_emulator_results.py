"""The result link: download, HEAD, Range, expiry, tampering, dropped connections, watermark, sizes."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from emulator_helpers import RED, Api, image_bytes, probe
from inbetween.domain.catalog import output_size


@pytest.fixture
def finished(api, clock, emulator, flash_body):
    """Run a task to SUCCEEDED and return its query output."""

    def run(body=None) -> dict:
        task_id = api.submit(body or flash_body(watermark=False))
        clock.advance(3)
        assert emulator.wait_until_idle()
        output = api.output(task_id)
        assert output["task_status"] == "SUCCEEDED", output
        return output

    return run


def test_download_head_and_range(finished):
    url = finished()["video_url"]
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert int(whole.headers["content-length"]) == len(whole.content)
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == whole.headers["content-length"]
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"


def test_expired_link_answers_like_oss(finished, clock):
    url = finished()["video_url"]
    clock.advance(24 * 3600 + 1)
    response = httpx.get(url)
    assert response.status_code == 403
    assert (
        "<Code>AccessDenied</Code>" in response.text
        and "<Message>Request has expired.</Message>" in response.text
    )


def test_tampered_link_is_refused(finished):
    url = finished()["video_url"]
    tampered = url.replace("Signature=", "Signature=AAAA")
    response = httpx.get(tampered)
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    later = url.replace("Expires=", "Expires=9")
    assert "<Code>SignatureDoesNotMatch</Code>" in httpx.get(later).text


def test_dropped_connection_mid_download(finished, emulator):
    url = finished()["video_url"]
    emulator.faults.drop_next_downloads(1, fraction=0.3)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).status_code == 200  # only the next one was dropped
    assert emulator.stats.downloads == 2


def test_watermark_is_drawn_in_the_bottom_right_corner(finished, flash_body):
    plain = probe(httpx.get(finished(flash_body(watermark=False))["video_url"]).content).first.astype(int)
    marked = probe(httpx.get(finished(flash_body(watermark=True))["video_url"]).content).first.astype(int)
    height, width, _ = plain.shape
    corner = np.abs(marked - plain)[int(height * 0.8) :, int(width * 0.6) :].mean()
    elsewhere = np.abs(marked - plain)[: int(height * 0.6), : int(width * 0.5)].mean()
    assert corner > 10 * max(elsewhere, 0.1)


def test_1080p_keeps_the_first_frame_aspect_ratio(finished, frames, flash_body):
    body = flash_body(resolution="1080P")
    body["input"]["first_frame_url"] = frames.add("portrait.png", image_bytes(RED, size=(750, 1000)))
    video = probe(httpx.get(finished(body)["video_url"]).content)
    assert (video.width, video.height) == output_size(750, 1000, "1080P") == (1232, 1648)
    assert video.frames == 150


def test_identical_inputs_are_rendered_once(api, clock, emulator, flash_body, frames):
    body = flash_body(watermark=False)
    body["input"]["last_frame_url"] = frames.add("red-again.png", image_bytes((200, 200, 40)))
    ids = [api.submit(body) for _ in range(4)]
    clock.advance(3)
    assert emulator.wait_until_idle()
    assert {api.output(task_id)["task_status"] for task_id in ids} == {"SUCCEEDED"}
    assert emulator.renders <= 1  # 0 if another test in this process rendered the same video already


def test_finished_hook_sees_each_terminal_task_once(api, clock, emulator, flash_body):
    seen = []
    emulator.on_task_finished.append(seen.append)
    body = flash_body()
    body["input"]["prompt"] = "[fail:InternalError.Algo]"
    task_id = api.submit(body)
    clock.advance(3)
    api.output(task_id)
    emulator.advance()
    assert [(s.task_id, s.status, s.code) for s in seen] == [(task_id, "FAILED", "InternalError.Algo")]


def test_command_line_prints_its_base_url():
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "inbetween_local.emulator", "--port", "0", "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": "shared:local"},
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:") and line.endswith("/api/v1")
        api = Api(line, "sk-cli")
        assert api.get("nope").json()["output"]["task_status"] == "UNKNOWN"
        api.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
