"""The stitch function as Lambda runs it, on template.yaml's resources in moto: a film run whose shots are
all stored is handed to the stitch queue (``film_runs.advance``), and the function's handler, fed that
queue's message as the SQS event source would, joins the real H.264 clips (PyAV, the media layer) into
film.mp4 with its poster and contact sheet under the run's results, stores the run and announces it once.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from inbetween.config import load_settings
from inbetween.deps import Deps
from inbetween.domain.films import FilmRun, FilmStatus, ShotRef
from inbetween.domain.models import InputObject, Job, JobSpec, JobStatus
from inbetween.usecases import film_runs
from inbetween.wiring import build_deps, use_deps
from inbetween_local.stack.moto_server import MotoServer
from inbetween_local.stack.provision import Provisioned, provision
from inbetween_local.stack.runtime import LambdaContext, SqsBatch, load_handler, run_sqs_batch
from inbetween_media import synth
from inbetween_media.probe import probe_clip
from PIL import Image

FILM = "harbour"
SHOT_FRAMES = (12, 10, 14)  # three shots, four keyframes
SIZE = (160, 120)
WEBHOOK_SECRET_RAW = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with MotoServer() as server:
        yield server.url


@dataclass
class StitchStack:
    session: boto3.session.Session
    provisioned: Provisioned
    stack_name: str
    deps: Deps
    notes_queue: str

    @property
    def s3(self) -> Any:
        return self.session.client("s3")

    @property
    def sqs(self) -> Any:
        return self.session.client("sqs")

    def deliver_stitch_queue(self) -> SqsBatch:
        """The stitch queue's messages, to the stitch function, as its SQS event source delivers them."""
        fn = self.provisioned.functions["StitchFunction"]
        [source] = fn.sqs_sources
        url = self.provisioned.ref(source.queue_logical_id)
        messages = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=source.batch_size, AttributeNames=["All"], VisibilityTimeout=2
        ).get("Messages", [])
        assert messages, "nothing was handed to the stitch"
        handler = load_handler(fn, self.stack_name)  # with the media layer's folder on sys.path
        batch = run_sqs_batch(
            lambda event: handler(
                event, LambdaContext.for_function(fn, f"{self.stack_name}-{fn.logical_id}")
            ),
            messages,
            sqs=self.sqs,
            queue_url=url,
            queue_arn=self.provisioned.arn(source.queue_logical_id),
            report_batch_item_failures=source.report_batch_item_failures,
        )
        return batch

    def notifications(self) -> list[dict]:
        out = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.notes_queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return out
            for message in messages:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                out.append({"message": json.loads(envelope["Message"]), "attributes": attributes})
                self.sqs.delete_message(QueueUrl=self.notes_queue, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def stack(moto_url, monkeypatch) -> Iterator[StitchStack]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    session = boto3.session.Session()
    stack_name = f"st-{uuid.uuid4().hex[:10]}"
    provisioned = provision(
        session,
        stack_name=stack_name,
        secret_values={
            "DASHSCOPE_API_KEY_SECRET": "sk-stitch-test",
            "WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_RAW,
        },
    )
    sqs = session.client("sqs")
    notes = sqs.create_queue(QueueName=f"{stack_name}-notes")["QueueUrl"]
    notes_arn = sqs.get_queue_attributes(QueueUrl=notes, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    session.client("sns").subscribe(
        TopicArn=provisioned.ref("NotifyTopic"), Protocol="sqs", Endpoint=notes_arn
    )
    # the template's environment, resolved: STITCH_QUEUE_URL among it
    deps = build_deps(load_settings(provisioned.environment), session=session)
    use_deps(deps)
    try:
        yield StitchStack(session, provisioned, stack_name, deps, notes)
    finally:
        use_deps(None)
        deps.close()


def _png(picture: Image.Image) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def _film_run_of_stored_shots(stack: StitchStack, tmp_path: Path, *, seam: int) -> FilmRun:
    """Real clips (keyframe k to k+1) stored as the shots' videos, the keyframes in the inbox, the shots'
    jobs STORED and the run RUNNING: what the last shot's completion leaves."""
    settings, store = stack.deps.settings, stack.deps.store
    digest = uuid.uuid4().hex[:12]
    run_id = f"{FILM}/{digest}"
    now = stack.deps.clock.now()
    keyframes = []
    for k in range(len(SHOT_FRAMES) + 1):
        key = f"{settings.inbox_prefix}{FILM}/{k + 1:02d}.png"
        stack.s3.put_object(Bucket=settings.inbox_bucket, Key=key, Body=_png(synth.keyframe(k, SIZE)))
        keyframes.append(key)
    shots = []
    for index, frames in enumerate(SHOT_FRAMES, start=1):
        clip = synth.make_clip(tmp_path / f"clip-{index}.mp4", index - 1, frames=frames, size=SIZE)
        shot = f"shot-{digest[:6]}{index:06d}"
        video_key = f"{settings.results_prefix}{FILM}/{shot}/video.mp4"
        stack.s3.upload_file(str(clip), settings.output_bucket, video_key)
        job = Job(
            job_id=f"{FILM}/{shot}",
            job_name=FILM,
            run_id=shot,
            status=JobStatus.STORED,
            spec=JobSpec(model="wan2.7-i2v", resolution="720P", duration=2),
            inputs={
                "first": InputObject(key=keyframes[index - 1], etag=f"e{index}", size=10),
                "last": InputObject(key=keyframes[index], etag=f"e{index + 1}", size=10),
            },
            created_at=now,
            updated_at=now,
            task_id=f"task-{index}",
            video_key=video_key,
            video_bytes=clip.stat().st_size,
            finished_at=now,
            film_runs=(run_id,),
            announce=False,
        )
        assert store.add_job(job)
        shots.append(ShotRef(index=index, number=index, last_number=index + 1, job_id=job.job_id))
    run = FilmRun(
        run_id=run_id,
        film=FILM,
        status=FilmStatus.RUNNING,
        shots=tuple(shots),
        created_at=now,
        updated_at=now,
        seam=seam,
        keyframes=tuple(keyframes),
    )
    assert store.add_film_run(run, due_at=now + 300)
    return run


@pytest.mark.parametrize("seam", [0, 2])
def test_the_stitch_function_makes_the_film_of_a_run_whose_shots_are_stored(stack, tmp_path, seam):
    # Given a film run whose last shot was just stored, handed to the stitch queue
    run = _film_run_of_stored_shots(stack, tmp_path, seam=seam)
    assert film_runs.advance(stack.deps, run.run_id) is film_runs.FilmProgress.STITCH

    # When the stitch function gets the stitch queue's message
    assert stack.deliver_stitch_queue().failed == []

    # Then the film, its poster and its contact sheet are stored under the run's results
    settings = stack.deps.settings
    prefix = f"{settings.results_prefix}{FILM}/film-{run.digest}/"
    listed = stack.s3.list_objects_v2(Bucket=settings.output_bucket, Prefix=prefix).get("Contents", [])
    assert {o["Key"].removeprefix(prefix) for o in listed} == {"film.mp4", "poster.jpg", "contact-sheet.png"}
    expected_frames = sum(SHOT_FRAMES) - (len(SHOT_FRAMES) - 1) * (1 + seam)
    film = tmp_path / "film.mp4"
    stack.s3.download_file(settings.output_bucket, prefix + "film.mp4", str(film))
    info = probe_clip(film)
    assert (info.codec, info.frames, (info.width, info.height)) == ("h264", expected_frames, SIZE)
    head = stack.s3.head_object(Bucket=settings.output_bucket, Key=prefix + "poster.jpg")
    assert head["ContentType"] == "image/jpeg"
    sheet = stack.s3.get_object(Bucket=settings.output_bucket, Key=prefix + "contact-sheet.png")
    assert sheet["ContentType"] == "image/png" and sheet["Body"].read().startswith(b"\x89PNG")

    # and the run is stored with the film's frame count (every seam drops one frame, a blend F more)
    stored = stack.deps.store.get_film_run(run.run_id)
    assert stored.status is FilmStatus.STORED
    assert (stored.frames, stored.video_key) == (expected_frames, prefix + "film.mp4")
    assert stored.notified_at is not None

    # and announced once, with the film's links
    [note] = stack.notifications()
    assert note["message"]["type"] == film_runs.FILM_SUCCEEDED_EVENT
    assert note["attributes"]["event_type"] == film_runs.FILM_SUCCEEDED_EVENT
    data = note["message"]["data"]
    assert (data["film_run"], data["status"]) == (run.run_id, "STORED")
    assert data["film_video"]["key"] == prefix + "film.mp4"
    assert data["film_video"]["frames"] == expected_frames


def test_a_redelivered_stitch_message_stores_and_announces_nothing_more(stack, tmp_path):
    # Given a film the stitch function stored and announced
    run = _film_run_of_stored_shots(stack, tmp_path, seam=0)
    assert film_runs.advance(stack.deps, run.run_id) is film_runs.FilmProgress.STITCH
    assert stack.deliver_stitch_queue().failed == []
    assert len(stack.notifications()) == 1
    settings = stack.deps.settings
    film_key = f"{settings.results_prefix}{FILM}/film-{run.digest}/film.mp4"
    versions = stack.s3.list_object_versions(Bucket=settings.output_bucket, Prefix=film_key)["Versions"]

    # When its message comes again (the poller's overdue hand-over raced the first stitch)
    stack.deps.queues.stitch_film(run.run_id)
    assert stack.deliver_stitch_queue().failed == []

    # Then nothing is stitched, stored or announced again
    again = stack.s3.list_object_versions(Bucket=settings.output_bucket, Prefix=film_key)["Versions"]
    assert len(again) == len(versions) == 1
    assert stack.notifications() == []
    assert stack.deps.store.get_film_run(run.run_id).status is FilmStatus.STORED


def test_a_message_that_is_not_a_stitch_fails_alone_and_goes_back_to_the_queue(stack):
    # Given a message the stitch does not understand
    url = stack.provisioned.ref("StitchQueue")
    stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "complete", "job_id": "x"}))

    # When the stitch function gets it
    batch = stack.deliver_stitch_queue()

    # Then it fails (a batch of one: Powertools fails the whole batch) and stays in the queue; after five
    # receives the queue's redrive parks it in the stitch DLQ, whose alarm fires
    assert batch.succeeded == [] and len(batch.failed) == 1
    assert batch.error is not None
    assert stack.notifications() == []
