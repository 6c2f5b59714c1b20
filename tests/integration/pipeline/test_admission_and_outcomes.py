"""Admission control under the provider's quota, and every way a job can end.

The deployment defaults to wan2.2-kf2v-flash here, not to the product's wan2.7-i2v: these cases are kf2v's
(two concurrent tasks, a drop is a pair, 800-character prompts). A first frame alone under wan2.7 is
test_happy_path's.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from pipeline_kit import API_KEY, BLUE, RED, frame_png

KF2V = "wan2.2-kf2v-flash"


@pytest.fixture
def template_parameters():
    return {"DefaultModel": KF2V}  # DefaultResolution "": the model's own 720P


def _all_final(pipeline, names):
    def done():
        items = pipeline.latest_runs(names).values()
        return all(i and i.get("notified_at") for i in items)

    return done


def test_a_backlog_keeps_both_slots_busy_and_never_earns_a_throttling_error(pipeline, pair):
    # Given six jobs dropped at once, and the published quota of two concurrent tasks
    names = [f"backlog-{i}" for i in range(6)]
    for name in names:
        pipeline.drop(name, pair)
    peak = 0

    # When the pipeline works through them
    def done():
        nonlocal peak
        peak = max(peak, pipeline.deps.store.slots_in_use(KF2V))
        return _all_final(pipeline, names)()

    pipeline.run_until(done, timeout=60)
    # Then all are stored, never more than two ran at once, and the provider never said Throttling
    assert {pipeline.job(n)["status"] for n in names} == {"STORED"}
    assert peak <= 2
    assert pipeline.emulator.stats.creates_accepted == 6
    assert not any(code.startswith("Throttling") for code in pipeline.emulator.stats.creates_rejected)
    assert pipeline.deps.store.slots_in_use(KF2V) == 0


def test_jobs_are_submitted_in_arrival_order(pipeline, pair):
    names = [f"order-{i}" for i in range(4)]
    for name in names:
        pipeline.drop(name, pair)
        pipeline.submit_step()
    pipeline.run_until(_all_final(pipeline, names), timeout=60)
    submitted = sorted(names, key=lambda n: pipeline.job(n)["submitted_at"])
    assert submitted == names


def test_a_throttled_create_puts_the_job_back_in_line_and_it_still_completes(pipeline, pair):
    # another program shares the account: the provider answers 429 although we think a slot is free
    pipeline.emulator.faults.fail_next_creates(1, status=429)
    pipeline.drop("shared-account", pair)
    item = pipeline.run_until_final("shared-account", timeout=40)
    assert item["status"] == "STORED"
    assert pipeline.emulator.stats.creates_accepted == 1


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("[reject:DataInspectionFailed]", "DataInspectionFailed"),
        ("[reject:IPInfringementSuspect]", "IPInfringementSuspect"),
        ("[reject:Arrearage]", "Arrearage"),
        ("[reject:InvalidParameter]", "InvalidParameter"),
    ],
)
def test_a_provider_rejection_ends_the_job_with_an_error_report_and_a_failure_notification(
    pipeline, pair, marker, code
):
    pipeline.drop("refused", dict(pair, **{"job.json": json.dumps({"prompt": f"scene {marker}"}).encode()}))
    item = pipeline.run_until_final("refused")
    assert item["status"] == "REJECTED"
    assert item["error"]["code"] == code
    report = pipeline.read_json(pipeline.settings.inbox_bucket, "inbox/refused/error.json")
    assert report["error"]["code"] == code
    assert report["what_to_do"]
    notes = pipeline.notifications()
    assert [n["attributes"]["event_type"] for n in notes] == ["video.generation.failed"]
    assert pipeline.deps.store.slots_in_use(KF2V) == 0


@pytest.mark.parametrize(
    ("marker", "code"),
    [("[fail:InvalidParameter]", "InvalidParameter"), ("[fail]", "TaskFailed")],
)
def test_a_task_that_fails_after_acceptance_ends_failed_with_the_reason(pipeline, pair, marker, code):
    pipeline.drop("later", dict(pair, **{"prompt.txt": f"walk {marker}".encode()}))
    item = pipeline.run_until_final("later")
    assert item["status"] == "FAILED"
    assert item["error"]["code"] == code
    assert (
        pipeline.read_json(pipeline.settings.inbox_bucket, "inbox/later/error.json")["error"]["code"] == code
    )
    assert len(pipeline.notifications()) == 1


def test_a_wrong_api_key_rejects_the_job_and_says_how_to_fix_it(pipeline, pair):
    sm = pipeline.session.client("secretsmanager")
    sm.put_secret_value(SecretId=pipeline.settings.api_key_secret, SecretString="sk-wrong")
    pipeline.drop("badkey", pair)
    item = pipeline.run_until_final("badkey")
    assert item["status"] == "REJECTED"
    assert item["error"]["code"] == "InvalidApiKey"
    assert "Secrets Manager" in item["error"]["hint"]
    report = json.dumps(pipeline.read_json(pipeline.settings.inbox_bucket, "inbox/badkey/error.json"))
    assert "sk-wrong" not in report and API_KEY not in report


def test_a_download_cut_in_the_middle_is_retried_and_the_stored_video_is_whole(pipeline, pair, tmp_path):
    pipeline.emulator.faults.drop_next_downloads(2, fraction=0.5)
    pipeline.drop("cut", pair)
    item = pipeline.run_until_final("cut", timeout=40)
    assert item["status"] == "STORED"
    data = pipeline.s3.get_object(Bucket=pipeline.settings.output_bucket, Key=item["video_key"])[
        "Body"
    ].read()
    import av

    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 150


def test_a_folder_with_only_one_frame_is_rejected_after_the_timeout_with_inputs_kept(pipeline):
    pipeline.drop("lonely", {"first.png": frame_png(RED)})
    item = pipeline.run_until_final("lonely", timeout=30)
    assert item["status"] == "REJECTED"
    assert item["error"]["code"] == "IncompleteDrop"
    report = pipeline.read_json(pipeline.settings.inbox_bucket, "inbox/lonely/error.json")
    assert "last" in report["error"]["message"]
    assert pipeline.s3.get_object(Bucket=pipeline.settings.inbox_bucket, Key="inbox/lonely/first.png")
    assert pipeline.emulator.stats.creates_accepted == 0


def test_the_missing_frame_arriving_before_the_timeout_completes_the_job(pipeline):
    pipeline.drop("patient", {"first.png": frame_png(RED)})
    pipeline.submit_step()
    assert pipeline.job("patient") is None
    pipeline.drop("patient", {"last.png": frame_png(BLUE)})
    item = pipeline.run_until_final("patient")
    assert item["status"] == "STORED"


def test_an_effect_template_job_needs_only_a_first_frame(pipeline):
    job = {"model": "wanx2.1-kf2v-plus", "template": "mech1"}
    pipeline.drop("effect", {"first.png": frame_png(RED), "job.json": json.dumps(job).encode()})
    item = pipeline.run_until_final("effect")
    assert item["status"] == "STORED"
    assert pipeline.notifications()[0]["attributes"]["model"] == "wanx2.1-kf2v-plus"


def _png_rgba() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (320, 240), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"first.png": b"", "last.png": frame_png(BLUE)}, "EmptyImage"),
        ({"first.png": b"this is not a png", "last.png": frame_png(BLUE)}, "NotAnImage"),
        ({"first.png": frame_png(RED)[:200], "last.png": frame_png(BLUE)}, "CorruptImage"),
        ({"first.png": _png_rgba(), "last.png": frame_png(BLUE)}, "ImageHasAlpha"),
        ({"first.png": frame_png(RED, (100, 100)), "last.png": frame_png(BLUE)}, "ImageTooSmall"),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b"{not json"},
            "InvalidJobJson",
        ),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b'{"promt": "x"}'},
            "InvalidJobJson",
        ),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b'{"seed": "7"}'},
            "InvalidJobJson",
        ),
        (
            {"first.png": frame_png(RED), "last.png": frame_png(BLUE), "job.json": b'{"model": "wan9"}'},
            "UnknownModel",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"model": "wanx2.1-kf2v-plus", "resolution": "1080P"}',
            },
            "UnsupportedResolution",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"model": "wanx2.1-kf2v-plus", "template": "mech1"}',
            },
            "TemplateWithLastFrame",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": json.dumps({"prompt": "x" * 801}).encode(),
            },
            "PromptTooLong",
        ),
        (
            {
                "first.png": frame_png(RED),
                "last.png": frame_png(BLUE),
                "job.json": b'{"webhook_url": "https://169.254.169.254/latest"}',
            },
            "UnsafeWebhookUrl",
        ),
        (
            {"first.png": frame_png(RED), "first.jpg": frame_png(RED), "last.png": frame_png(BLUE)},
            "AmbiguousDrop",
        ),
    ],
    ids=[
        "zero-bytes",
        "not-an-image",
        "truncated",
        "alpha-channel",
        "too-small",
        "job-json-not-json",
        "job-json-unknown-field",
        "job-json-wrong-type",
        "unknown-model",
        "resolution-the-model-lacks",
        "template-with-last-frame",
        "prompt-over-limit",
        "webhook-to-metadata-address",
        "two-first-frames",
    ],
)
def test_bad_input_is_rejected_with_an_error_report_and_no_provider_call(pipeline, files, code):
    pipeline.drop("bad", files)
    item = pipeline.run_until_final("bad")
    assert item["status"] == "REJECTED"
    assert item["error"]["code"] == code
    report = pipeline.read_json(pipeline.settings.inbox_bucket, "inbox/bad/error.json")
    assert report["error"]["code"] == code
    assert report["what_to_do"]
    notes = pipeline.notifications()
    assert len(notes) == 1 and notes[0]["attributes"]["status"] == "REJECTED"
    assert pipeline.emulator.stats.creates_accepted == 0
    kept = {o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=pipeline.settings.inbox_bucket)["Contents"]}
    assert {f"inbox/bad/{name}" for name in files} <= kept
