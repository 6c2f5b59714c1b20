"""S3Blobs on moto in-process: folder listings, conditional and bounded reads, heads, and the streamed,
verified video upload (a multipart upload completed only for a whole MP4, aborted otherwise)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from inbetween.aws import s3_blobs
from inbetween.aws.s3_blobs import S3Blobs
from inbetween.domain.models import ObjectHead
from inbetween.errors import StorageError, VideoDownloadFailed, VideoRejected

BUCKET = "inbetween-output"
KEY = "results/shot/run1/video.mp4"
PART = 5 * 1024 * 1024  # the smallest part S3 takes (s3transfer raises a smaller one to it)
CHUNK = 1024 * 1024  # the video source's read size


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def blobs(s3) -> S3Blobs:
    return S3Blobs(s3)


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(s3_blobs, "PART_SIZE", PART)


def chunks_of(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def open_uploads(s3) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


# ---------------------------------------------------------------------------------------------- reading
def test_list_folder_lists_the_folders_own_objects_only(s3, blobs):
    for key, body in (
        ("inbox/shot/first.png", b"first"),
        ("inbox/shot/last.png", b"last frame"),
        ("inbox/shot/old/first.png", b"nested"),
        ("inbox/shot-2/first.png", b"another folder"),
    ):
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    before = datetime.now(UTC).timestamp()
    listed = blobs.list_folder(BUCKET, "inbox/shot/")
    assert [(o.key, o.etag, o.size) for o in listed] == [
        ("inbox/shot/first.png", hashlib.md5(b"first").hexdigest(), 5),  # noqa: S324 - S3's ETag
        ("inbox/shot/last.png", hashlib.md5(b"last frame").hexdigest(), 10),  # noqa: S324 - S3's ETag
    ]
    assert all(abs(o.last_modified - before) < 120 for o in listed)
    assert blobs.list_folder(BUCKET, "inbox/nothing/") == []


def test_list_folder_follows_pages(s3, blobs, monkeypatch):
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "2")  # S3 pages by 1000 keys; moto, here, by 2
    for i in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"inbox/many/{i}.png", Body=b"x")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="inbox/many/")["IsTruncated"]
    assert [o.key for o in blobs.list_folder(BUCKET, "inbox/many/")] == [
        f"inbox/many/{i}.png" for i in range(5)
    ]


def test_read_returns_the_body_when_the_etag_matches_and_refuses_it_otherwise(s3, blobs):
    s3.put_object(Bucket=BUCKET, Key="inbox/shot/first.png", Body=b"the frame")
    etag = blobs.list_folder(BUCKET, "inbox/shot/")[0].etag
    assert blobs.read(BUCKET, "inbox/shot/first.png") == b"the frame"
    assert blobs.read(BUCKET, "inbox/shot/first.png", etag=etag) == b"the frame"
    # the object changed since it was listed: the read says so instead of returning other bytes
    s3.put_object(Bucket=BUCKET, Key="inbox/shot/first.png", Body=b"another frame")
    with pytest.raises(StorageError, match="PreconditionFailed"):
        blobs.read(BUCKET, "inbox/shot/first.png", etag=etag)
    with pytest.raises(StorageError, match="NoSuchKey"):
        blobs.read(BUCKET, "inbox/shot/missing.png")


def test_a_bounded_read_returns_one_byte_more_than_the_bound_so_the_caller_sees_oversize(s3, blobs):
    s3.put_object(Bucket=BUCKET, Key="inbox/shot/job.json", Body=b"0123456789")
    assert blobs.read(BUCKET, "inbox/shot/job.json", max_bytes=4) == b"01234"
    assert blobs.read(BUCKET, "inbox/shot/job.json", max_bytes=10) == b"0123456789"
    assert blobs.read(BUCKET, "inbox/shot/job.json", max_bytes=100) == b"0123456789"


def test_head_gives_the_metadata_version_etag_and_size_or_none(s3, blobs):
    etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"v", Metadata={"task-id": "task-1"})["ETag"]
    assert blobs.head(BUCKET, KEY) == ObjectHead(
        metadata={"task-id": "task-1"}, version_id=None, etag=etag.strip('"'), size=1
    )
    assert blobs.head(BUCKET, "results/none.mp4") is None
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"v22")
    assert blobs.head(BUCKET, KEY) == ObjectHead(
        metadata={}, version_id=put["VersionId"], etag=put["ETag"].strip('"'), size=3
    )


def test_put_json_writes_readable_json(s3, blobs):
    blobs.put_json(BUCKET, "results/shot/run1/metadata.json", {"job": "shot", "prompt": "über", "n": 1})
    obj = s3.get_object(Bucket=BUCKET, Key="results/shot/run1/metadata.json")
    assert obj["ContentType"] == "application/json"
    assert json.loads(obj["Body"].read()) == {"job": "shot", "prompt": "über", "n": 1}


def test_a_presigned_link_names_the_object_and_its_lifetime(s3, blobs):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"video")
    url = urlsplit(blobs.presign_get(BUCKET, KEY, 3600))
    assert (url.hostname or "").startswith(BUCKET) and url.path.endswith("/" + KEY)
    query = parse_qs(url.query)
    if "X-Amz-Expires" in query:  # SigV4
        assert query["X-Amz-Expires"] == ["3600"]
    else:  # SigV2: the instant it expires
        assert abs(int(query["Expires"][0]) - time.time() - 3600) < 60


# ---------------------------------------------------------------------------------------------- storing a video
def test_a_whole_video_is_streamed_in_parts_and_stored_with_its_digest(s3, blobs, small_parts, make_mp4):
    video = make_mp4(bytes(range(256)) * (18 * PART // 1024))  # 4.5 parts
    stored = blobs.store_video(
        BUCKET, KEY, chunks_of(video, CHUNK), expected_bytes=len(video), metadata={"task-id": "task-1"}
    )
    assert (stored.bucket, stored.key, stored.size) == (BUCKET, KEY, len(video))
    assert stored.sha256 == hashlib.sha256(video).hexdigest()
    obj = s3.get_object(Bucket=BUCKET, Key=KEY)
    assert obj["Body"].read() == video
    assert (obj["ContentType"], obj["Metadata"]) == ("video/mp4", {"task-id": "task-1"})
    assert obj["ETag"].strip('"').endswith("-5")  # a multipart upload of five parts
    assert open_uploads(s3) == []


def test_a_video_smaller_than_a_part_is_one_put(s3, blobs, make_mp4):
    video = make_mp4()
    stored = blobs.store_video(BUCKET, KEY, [video], expected_bytes=None, metadata={"task-id": "task-1"})
    assert (stored.size, stored.sha256) == (len(video), hashlib.sha256(video).hexdigest())
    obj = s3.get_object(Bucket=BUCKET, Key=KEY)
    assert obj["Body"].read() == video
    assert "-" not in obj["ETag"]  # not a multipart upload
    assert (obj["ContentType"], obj["Metadata"]) == ("video/mp4", {"task-id": "task-1"})


@pytest.mark.parametrize("parts", [0.5, 2.5], ids=["one-put", "multipart"])
@pytest.mark.parametrize(
    ("cut", "declared", "problem"),
    [
        (lambda v: v[: len(v) // 2], lambda v: len(v), "incomplete"),
        (lambda v: v[:-10], lambda v: None, "truncated"),
        (lambda v: b"<html>502 Bad Gateway</html>" * (len(v) // 28), lambda v: None, "not an MP4"),
        (lambda v: v.replace(b"vide", b"soun"), lambda v: None, "no video track"),
        (lambda v: v, lambda v: len(v) + 1, "incomplete"),
    ],
    ids=["short-of-length", "truncated-box", "html", "no-video-track", "longer-declared"],
)
def test_a_video_that_is_not_whole_is_rejected_and_its_upload_aborted(
    s3, blobs, small_parts, make_mp4, cut, declared, problem, parts
):
    video = make_mp4(b"\x07" * int(parts * PART))
    body = cut(video)
    with pytest.raises(VideoRejected, match=problem):
        blobs.store_video(BUCKET, KEY, chunks_of(body, CHUNK), expected_bytes=declared(video))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert open_uploads(s3) == []


def test_a_download_that_fails_midway_aborts_the_upload(s3, blobs, small_parts, make_mp4):
    video = make_mp4(b"\x07" * (5 * PART))

    def cut_off() -> Iterator[bytes]:
        yield from chunks_of(video[: 3 * PART], CHUNK)
        raise VideoDownloadFailed("connection reset while reading the video")

    with pytest.raises(VideoDownloadFailed):
        blobs.store_video(BUCKET, KEY, cut_off(), expected_bytes=len(video))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert open_uploads(s3) == []


def test_a_rejected_retry_leaves_an_earlier_stored_video_in_place(s3, blobs, small_parts, make_mp4):
    video = make_mp4(b"\x07" * (2 * PART))
    blobs.store_video(BUCKET, KEY, chunks_of(video, CHUNK), expected_bytes=None)
    with pytest.raises(VideoRejected):
        blobs.store_video(BUCKET, KEY, chunks_of(video[:-10], CHUNK), expected_bytes=None)
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == video


def test_the_stream_hands_the_transfer_whole_parts_whatever_the_download_chunks(make_mp4):
    # S3 refuses a part under 5 MiB unless it is the last: reads are filled across chunk boundaries
    video = make_mp4(b"\x07" * 50_000)
    stream = s3_blobs._CheckedVideoStream(chunks_of(video, 3_000), len(video))
    reads = iter(lambda: stream.read(16_384), b"")
    sizes = [len(data) for data in reads]
    assert sizes[:-1] == [16_384] * (len(sizes) - 1) and 0 < sizes[-1] <= 16_384
    assert sum(sizes) == len(video) and stream.sha256() == hashlib.sha256(video).hexdigest()


# ---------------------------------------------------------------------------------------------- digest
def test_digest_video_reads_back_the_stored_bytes_and_judges_them(s3, blobs, make_mp4):
    video = make_mp4(b"\x01" * 3_000_000)  # more than one read chunk
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=video)
    assert blobs.digest_video(BUCKET, KEY) == (hashlib.sha256(video).hexdigest(), len(video), None)
    s3.put_object(Bucket=BUCKET, Key="results/x/bad.mp4", Body=video[:-1])
    digest, size, problem = blobs.digest_video(BUCKET, "results/x/bad.mp4")
    assert (digest, size, problem) == (
        hashlib.sha256(video[:-1]).hexdigest(),
        len(video) - 1,
        "MP4 is truncated",
    )


def test_digest_video_reads_the_version_it_is_given(s3, blobs, make_mp4):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = make_mp4(b"\x01" * 100)
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=first)["VersionId"]
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"overwritten")
    assert blobs.digest_video(BUCKET, KEY, version_id=version) == (
        hashlib.sha256(first).hexdigest(),
        len(first),
        None,
    )
    assert blobs.digest_video(BUCKET, KEY)[2] == "not an MP4: the file does not start with an ftyp box"
