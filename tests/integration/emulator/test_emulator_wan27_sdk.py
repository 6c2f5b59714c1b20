"""The official SDK against the emulator: the reference's wan2.7 samples (A1's sync and async calls, G1's
first+last, continuation and continuation+last-frame samples), unchanged but for base URL, key and media
URLs, and the guide's ``file://`` input method for kf2v and wan2.7. Every video is checked with PyAV."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import dashscope
import httpx
import numpy as np
import pytest
from dashscope import VideoSynthesis
from dashscope.client import base_api
from emulator_helpers import API_KEY, BLUE, GREEN, RED, FrameHost, centre_colour, close_to, image_bytes
from inbetween.domain.catalog import output_size
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults
from media_helpers import MediaProbe, clip, dominant_hz, probe_media, rms, tone, window, write

RAP_PROMPT = (
    "一幅都市奇幻艺术的场景。一个充满动感的涂鸦艺术角色。一个由喷漆所画成的少年，正从一面混凝土墙上活过来。"
    "他一边用极快的语速演唱一首英文rap，一边摆着一个经典的、充满活力的说唱歌手姿势。场景设定在夜晚一个充满都市感的"
    "铁路桥下。灯光来自一盏孤零零的街灯，营造出电影般的氛围，充满高能量和惊人的细节。视频的音频部分完全由rap构成，"
    "没有其他对话或杂音。"
)
FRAME = 1 / 30
TONE_HZ = 440.0  # the emulator's own soundtrack when no driving audio is given


@pytest.fixture(scope="module")
def live_emulator() -> Iterator[EmulatorServer]:
    """Real clock, short lifecycle: the SDK's wait loop polls real time."""
    config = EmulatorConfig(api_keys=(API_KEY,), pending_s=0.2, running_s=0.5, faults=Faults())
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def host() -> Iterator[FrameHost]:
    """Stands in for help-static-aliyun-doc.aliyuncs.com: the samples' media, made locally."""
    files = FrameHost()
    files.add("rap.png", image_bytes(RED, size=(640, 360)))
    files.add("rap.mp3", tone(12, 1000, "mp3", rate=24_000))  # longer than the 10 s asked
    files.add("short.wav", tone(3, 660))  # shorter than the 10 s asked
    files.add("wan2.7-i2v-first-frame.webp", image_bytes(GREEN, size=(640, 480), fmt="WEBP"))
    files.add("wan2.7-i2v-last-frame.webp", image_bytes(BLUE, size=(640, 480), fmt="WEBP"))
    files.add("wan2.7-i2v-video-continuation.mp4", clip([RED, GREEN], size=(320, 240), fps=24))
    files.add("wan2.7-i2v-video-continuation.webp", image_bytes(BLUE, size=(320, 240), fmt="WEBP"))
    files.add("wan2.7-i2v-video-continuation-2.mp4", clip([GREEN, RED], size=(480, 270), fps=25))
    yield files
    files.close()


@pytest.fixture
def sdk(live_emulator, monkeypatch) -> str:
    monkeypatch.setattr(dashscope, "base_http_api_url", live_emulator.base_url)
    # the SDK's wait loop sleeps 1, 1, 2, 2, ... seconds: scale its clock down tenfold
    monkeypatch.setattr(
        base_api, "time", types.SimpleNamespace(time=time.time, sleep=lambda s: time.sleep(s / 10))
    )
    return API_KEY


def video_of(url: str, *at_seconds: float) -> MediaProbe:
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    return probe_media(response.content, at_seconds)


def assert_video(video: MediaProbe, duration: int, size: tuple[int, int]) -> None:
    """The asked duration (within one frame), 30 fps, H.264, the size rule, an AAC soundtrack as long."""
    assert video.codec == "h264" and video.fps == 30.0
    assert abs(video.duration_s - duration) <= FRAME and video.frames == duration * 30
    assert (video.width, video.height) == size
    assert video.audio_codec == "aac" and abs(video.audio_duration_s - duration) <= FRAME


def assert_usage(rsp, duration: int, clip_seconds: int = 0, sr: int = 720) -> None:
    usage = rsp.usage
    assert (usage.duration, usage.input_video_duration, usage.output_video_duration) == (
        duration,
        clip_seconds,
        duration - clip_seconds,
    )
    assert (usage.video_count, usage.SR) == (1, sr)


def test_a1_sync_sample_first_frame_with_driving_audio(sdk, host):
    api_key = sdk
    media = [
        {"type": "first_frame", "url": host.url("rap.png")},
        {"type": "driving_audio", "url": host.url("rap.mp3")},
    ]

    # -- A1 "同步调用", verbatim --
    print("----sync call, please wait a moment----")
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.7-i2v-2026-04-25",
        media=media,
        resolution="720P",
        duration=10,
        watermark=True,
        prompt=RAP_PROMPT,
    )
    if rsp.status_code == HTTPStatus.OK:
        print(rsp.output.video_url)
    else:
        print(f"Failed, status_code: {rsp.status_code}, code: {rsp.code}, message: {rsp.message}")

    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    assert rsp.output.orig_prompt == RAP_PROMPT
    assert_usage(rsp, 10)
    video = video_of(rsp.output.video_url, 0.0)
    assert_video(video, 10, output_size(640, 360, "720P"))
    assert close_to(centre_colour(video.pictures[0]), RED)
    # the soundtrack is the driving audio's first 10 s: its 1 kHz tone, at its level, to the end
    assert abs(dominant_hz(window(video, 0.5, 9.5), video.audio_rate) - 1000) < 5
    for start in range(0, 10, 2):
        assert abs(rms(window(video, start + 0.1, start + 1.9)) - 0.5 / np.sqrt(2)) < 0.05


def test_a1_async_sample_with_a_shorter_audio(sdk, host):
    api_key = sdk
    media = [
        {"type": "first_frame", "url": host.url("rap.png")},
        {"type": "driving_audio", "url": host.url("short.wav")},
    ]

    # -- A1 "异步调用", verbatim --
    rsp = VideoSynthesis.async_call(
        api_key=api_key,
        model="wan2.7-i2v-2026-04-25",
        media=media,
        resolution="720P",
        duration=10,
        watermark=True,
        prompt=RAP_PROMPT,
    )
    print(rsp)
    if rsp.status_code == HTTPStatus.OK:
        print(f"task_id: {rsp.output.task_id}")
    else:
        print(f"Failed, status_code: {rsp.status_code}, code: {rsp.code}, message: {rsp.message}")
    status = VideoSynthesis.fetch(task=rsp, api_key=api_key)
    if status.status_code == HTTPStatus.OK:
        print(status.output.task_status)
    else:
        print(f"Failed, status_code: {status.status_code}, code: {status.code}, message: {status.message}")
    rsp = VideoSynthesis.wait(task=rsp, api_key=api_key)
    print(rsp)
    if rsp.status_code == HTTPStatus.OK:
        print(rsp.output.video_url)

    assert status.status_code == HTTPStatus.OK and status.output.task_status in ("PENDING", "RUNNING")
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    assert_usage(rsp, 10)
    video = video_of(rsp.output.video_url)
    assert_video(video, 10, output_size(640, 360, "720P"))
    # 3 s of the given 660 Hz audio, then silence (A1: "音频为3秒，视频时长为5秒，输出视频前3秒有声，后2秒无声")
    assert abs(dominant_hz(window(video, 0.2, 2.8), video.audio_rate) - 660) < 5
    assert rms(window(video, 0.2, 2.8)) > 0.3
    assert rms(window(video, 3.2, 9.9)) < 0.01


def test_first_frame_only_takes_the_defaults_and_writes_its_own_sound(sdk, host):
    # no Python sample covers this task type (A1 §1.4 combination 1): the sync sample with one item
    api_key = sdk
    media = [{"type": "first_frame", "url": host.url("rap.png")}]
    rsp = VideoSynthesis.call(api_key=api_key, model="wan2.7-i2v", media=media, prompt="A red card.")
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    # default 1080P, 5 s (§1.6); 16:9 at the assumed 1920*1080 target floors to 1920x1072 (§3.2)
    assert_usage(rsp, 5, sr=1080)
    video = video_of(rsp.output.video_url, 2.5)
    assert_video(video, 5, (1920, 1072))
    assert (1920, 1072) == output_size(640, 360, "1080P")
    # the picture moves (a slow zoom) and keeps the first frame's colour
    assert close_to(centre_colour(video.pictures[0]), RED) and close_to(
        centre_colour(video.pictures[-1]), RED
    )
    assert abs(dominant_hz(window(video, 0.5, 4.5), video.audio_rate) - TONE_HZ) < 5


def test_g1_first_and_last_frame_sample(sdk, host):
    api_key = sdk
    media = [
        {"type": "first_frame", "url": host.url("wan2.7-i2v-first-frame.webp")},
        {"type": "last_frame", "url": host.url("wan2.7-i2v-last-frame.webp")},
    ]

    # -- G1 "首尾帧生视频", verbatim --
    print("----sync call, please wait a moment----")
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.7-i2v-2026-04-25",
        media=media,
        resolution="720P",
        duration=15,
        watermark=True,
        prompt="清晨太阳刚刚升起，在南瓜地里面，有一颗小南瓜上面挂着露珠，突然小南瓜“咔擦”一声，出现了裂缝，从裂缝中透出金光，"
        "小南瓜伴随着金光裂开，出现一团白雾，一只小兔子在南瓜裂开的南瓜中央出现。",
    )
    if rsp.status_code == HTTPStatus.OK:
        print(rsp.output.video_url)

    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    assert_usage(rsp, 15)
    video = video_of(rsp.output.video_url, 7.5)
    assert_video(video, 15, output_size(640, 480, "720P"))
    assert close_to(centre_colour(video.pictures[0]), GREEN)
    assert close_to(centre_colour(video.pictures[-1]), BLUE)
    assert not close_to(centre_colour(video.at(7.5)), GREEN) and not close_to(
        centre_colour(video.at(7.5)), BLUE
    )
    assert abs(dominant_hz(window(video, 1, 14), video.audio_rate) - TONE_HZ) < 5


def test_g1_continuation_sample(sdk, host):
    api_key = sdk
    media = [{"type": "first_clip", "url": host.url("wan2.7-i2v-video-continuation-2.mp4")}]

    # -- G1 "首视频片段续写", verbatim --
    print("----sync call, please wait a moment----")
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.7-i2v-2026-04-25",
        media=media,
        resolution="720P",
        duration=12,
        watermark=True,
        prompt="面包师端上刷好的面包，将刷子放到一旁，镜头跟随面包师，去斜后方的烤炉进行烤制，面包师关上烤炉门，他站在烤炉旁边，"
        "看着正在烤炉里的面包，闻了闻面包的香气，说：“so good”。",
    )
    if rsp.status_code == HTTPStatus.OK:
        print(rsp.output.video_url)

    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    # 2 s of clip + 10 s continued = 12 s, billed 12 (G1: "原始 2 秒 + 续写 10 秒")
    assert_usage(rsp, 12, clip_seconds=2)
    video = video_of(rsp.output.video_url, 0.5, 1.5, 6.0)
    assert_video(video, 12, output_size(480, 270, "720P"))
    # the first seconds are the clip (green, then red), re-timed from 25 to 30 fps; then it goes on
    assert close_to(centre_colour(video.at(0.5)), GREEN) and close_to(centre_colour(video.at(1.5)), RED)
    assert close_to(centre_colour(video.at(6.0)), RED) and close_to(centre_colour(video.pictures[-1]), RED)
    assert abs(dominant_hz(window(video, 1, 11), video.audio_rate) - TONE_HZ) < 5


def test_g1_quick_start_sample_continuation_to_a_last_frame(sdk, host):
    api_key = sdk
    media = [
        {"type": "first_clip", "url": host.url("wan2.7-i2v-video-continuation.mp4")},
        {"type": "last_frame", "url": host.url("wan2.7-i2v-video-continuation.webp")},
    ]

    # -- G1 "快速开始", verbatim --
    print("----sync call, please wait a moment----")
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.7-i2v-2026-04-25",
        media=media,
        resolution="720P",
        duration=12,
        watermark=True,
        prompt="男人低头向下看到地上的木箱，他弯下腰，小心翼翼打开箱盖，他紧盯着箱内的东西，嘴唇颤抖的微微张开，皱着眉头，"
        "眼睛微微张大，露出惊恐的表情。",
    )
    if rsp.status_code == HTTPStatus.OK:
        print(rsp.output.video_url)

    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    assert_usage(rsp, 12, clip_seconds=2)
    video = video_of(rsp.output.video_url, 0.5, 1.5)
    assert_video(video, 12, output_size(320, 240, "720P"))
    assert close_to(centre_colour(video.at(0.5)), RED) and close_to(centre_colour(video.at(1.5)), GREEN)
    assert close_to(centre_colour(video.pictures[-1]), BLUE)  # it ends on the last frame


def test_a_failed_task_comes_back_with_status_200(sdk, host):
    rsp = VideoSynthesis.call(
        api_key=sdk,
        model="wan2.7-i2v",
        first_frame_url=host.url("rap.png"),  # the kf2v keyword: sent as input.first_frame_url
    )
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "FAILED"
    assert (rsp.output.code, rsp.output.message) == ("InvalidParameter", "Field required: input.media")
    assert rsp.output.video_url == ""


def test_a_refused_create_raises_in_call_and_returns_in_async_call(sdk, host):
    media = [{"type": "last_frame", "url": host.url("rap.png")}]
    with pytest.raises(dashscope.common.error.InvalidTask):
        VideoSynthesis.call(api_key=sdk, model="wan2.7-i2v", media=media)
    rsp = VideoSynthesis.async_call(api_key=sdk, model="wan2.7-i2v", media=media)
    assert rsp.status_code == 400 and rsp.code == "InvalidParameter" and "combination" in rsp.message


# --- local files: file:// through getPolicy, the upload host and oss:// (§7.5) -----------------------


def test_kf2v_guide_sample_with_local_files(sdk, live_emulator, tmp_path, monkeypatch):
    api_key = sdk
    write(tmp_path / "first_frame.png", image_bytes(RED, size=(750, 1000)))
    write(tmp_path / "last_frame.png", image_bytes(BLUE, size=(750, 1000)))
    monkeypatch.chdir(tmp_path)
    # 【方式二】使用本地文件（支持绝对路径和相对路径）
    first_frame_url = "file://" + str(tmp_path / "first_frame.png")
    last_frame_url = "file://" + "./last_frame.png"

    print("please wait...")
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.2-kf2v-flash",
        prompt="写实风格，一只黑色小猫好奇地看向天空，镜头从平视逐渐上升，最后俯拍它的好奇的眼神。",
        first_frame_url=first_frame_url,
        last_frame_url=last_frame_url,
        resolution="720P",
        prompt_extend=True,
    )
    print(rsp)
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    video = video_of(rsp.output.video_url)
    assert (video.width, video.height, video.frames) == (816, 1104, 150)
    assert close_to(centre_colour(video.pictures[0]), RED) and close_to(
        centre_colour(video.pictures[-1]), BLUE
    )
    uploaded = {key.rsplit("/", 1)[1]: f for key, f in live_emulator.uploads.files().items()}
    assert uploaded["first_frame.png"].model == uploaded["last_frame.png"].model == "wan2.2-kf2v-flash"


def test_wan27_local_frames_and_audio(sdk, live_emulator, tmp_path):
    api_key = sdk
    first = write(tmp_path / "pic-a.png", image_bytes(RED, size=(480, 640)))
    last = write(tmp_path / "pic-b.jpg", image_bytes(BLUE, size=(480, 640), fmt="JPEG"))
    audio = write(tmp_path / "voice.mp3", tone(3, 880, "mp3", rate=24_000))
    media = [
        {"type": "first_frame", "url": "file://" + str(first)},
        {"type": "last_frame", "url": "file://" + str(last)},
        {"type": "driving_audio", "url": "file://" + str(audio)},
    ]
    rsp = VideoSynthesis.call(api_key=api_key, model="wan2.7-i2v", media=media, resolution="720P", duration=3)
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED", rsp
    # the SDK rewrote the caller's list with the oss:// URLs it uploaded to (§7.2)
    assert all(item["url"].startswith("oss://dashscope-instant/") for item in media)
    stored = live_emulator.uploads.files()
    assert {stored[item["url"][len("oss://") :]].content_type for item in media} == {
        "image/png",
        "image/jpeg",
        "audio/mpeg",
    }
    video = video_of(rsp.output.video_url)
    assert_video(video, 3, output_size(480, 640, "720P"))
    assert close_to(centre_colour(video.pictures[-1]), BLUE)
    assert abs(dominant_hz(window(video, 0.2, 2.8), video.audio_rate) - 880) < 5


def test_wan27_local_clip_and_last_frame(sdk, tmp_path):
    api_key = sdk
    opening = write(tmp_path / "opening.mov", clip([GREEN, RED], size=(320, 240), fps=24, fmt="mov"))
    ending = write(tmp_path / "ending.webp", image_bytes(BLUE, size=(320, 240), fmt="WEBP"))
    media = [
        {"type": "first_clip", "url": "file://" + str(opening)},
        {"type": "last_frame", "url": "file://" + str(ending)},
    ]
    rsp = VideoSynthesis.call(api_key=api_key, model="wan2.7-i2v", media=media, resolution="720P", duration=3)
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED", rsp
    assert_usage(rsp, 3, clip_seconds=2)
    video = video_of(rsp.output.video_url, 0.5, 1.5)
    assert_video(video, 3, output_size(320, 240, "720P"))
    assert close_to(centre_colour(video.at(0.5)), GREEN) and close_to(centre_colour(video.at(1.5)), RED)
    assert close_to(centre_colour(video.pictures[-1]), BLUE)


def test_the_2x_client_with_a_local_file(live_emulator, host, tmp_path: Path):
    first = write(tmp_path / "still.png", image_bytes(GREEN, size=(640, 360)))
    client = dashscope.Client(api_key=API_KEY, base_url=live_emulator.base_url, max_retries=0)
    job = client.videos.generate(
        model="wan2.7-i2v",
        media=[
            {"type": "first_frame", "url": "file://" + str(first)},
            {"type": "driving_audio", "url": host.url("short.wav")},
        ],
        resolution="720P",
        duration=2,
        poll_interval=0.1,
    )
    assert job.succeeded and job.usage.duration == 2
    video = video_of(job.video_url)
    assert_video(video, 2, output_size(640, 360, "720P"))
    assert close_to(centre_colour(video.pictures[0]), GREEN)
    assert abs(dominant_hz(window(video, 0.2, 1.8), video.audio_rate) - 660) < 5
