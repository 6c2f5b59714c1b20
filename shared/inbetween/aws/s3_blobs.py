"""S3: the inbox (frames, error reports) and the output bucket (videos, metadata)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from inbetween.domain.models import ObjectHead, ObjectInfo, StoredVideo
from inbetween.domain.mp4_check import Mp4Inspector
from inbetween.errors import StorageError, VideoRejected

PART_SIZE = 8 * 1024 * 1024
# parts uploading at once, and the most held in memory (about this many parts, plus the one being read):
# 10 (s3transfer's default) measured 84 and 152 MiB of peak growth on two runs streaming 1 GiB
PARTS_IN_FLIGHT = 6


class S3Blobs:
    """``inbetween.ports.Blobs`` on S3."""

    def __init__(self, client: Any):
        self._s3 = client

    def list_folder(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        objects: list[ObjectInfo] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                modified: datetime = obj["LastModified"]
                objects.append(
                    ObjectInfo(
                        key=obj["Key"],
                        etag=obj["ETag"].strip('"'),
                        size=int(obj["Size"]),
                        last_modified=modified.timestamp(),
                    )
                )
        return objects

    def read(self, bucket: str, key: str, *, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            kwargs["IfMatch"] = f'"{etag}"'
        try:
            resp = self._s3.get_object(**kwargs)
        except ClientError as exc:
            raise StorageError(
                f"could not read s3://{bucket}/{key}: {exc.response['Error']['Code']}"
            ) from exc
        body = resp["Body"]
        data: bytes = body.read(max_bytes + 1) if max_bytes is not None else body.read()
        body.close()
        return data

    def presign_get(self, bucket: str, key: str, ttl_s: int) -> str:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(ttl_s)
        )
        return url

    def download_file(self, bucket: str, key: str, path: Path) -> int:
        try:
            self._s3.download_file(bucket, key, str(path))
        except ClientError as exc:
            raise StorageError(
                f"could not read s3://{bucket}/{key}: {exc.response['Error']['Code']}"
            ) from exc
        return path.stat().st_size

    def upload_file(self, bucket: str, key: str, path: Path, *, content_type: str) -> int:
        # boto3's managed transfer: multipart above its threshold, parts in parallel
        self._s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        return path.stat().st_size

    def put_json(self, bucket: str, key: str, data: dict[str, Any]) -> None:
        body = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode()
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        try:
            resp = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectHead(
            metadata=dict(resp.get("Metadata") or {}),
            version_id=resp.get("VersionId"),
            etag=str(resp.get("ETag", "")).strip('"'),
            size=int(resp.get("ContentLength", 0)),
        )

    def digest_video(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> tuple[str, int, str | None]:
        """sha256, size and what is wrong (None: an MP4 with a video track) of a stored video, streamed."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        body = self._s3.get_object(**kwargs)["Body"]
        inspector = Mp4Inspector()
        digest = hashlib.sha256()
        try:
            for chunk in body.iter_chunks(chunk_size=1024 * 1024):
                inspector.feed(chunk)
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest(), inspector.total, inspector.verdict()

    def store_video(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        expected_bytes: int | None,
        metadata: dict[str, str] | None = None,
    ) -> StoredVideo:
        """Stream ``chunks`` into S3 through boto3's managed transfer, which completes the upload only
        once the byte count matches and the bytes are an MP4 with a video track: the stream's last read
        raises otherwise, and the transfer aborts its multipart upload. Parts upload in parallel while
        the next is read; memory stays at a few parts, whatever the video's size."""
        stream = _CheckedVideoStream(chunks, expected_bytes)
        self._s3.upload_fileobj(
            stream,
            bucket,
            key,
            ExtraArgs={"ContentType": "video/mp4", "Metadata": metadata or {}},
            Config=_video_transfer(),
        )
        return StoredVideo(bucket=bucket, key=key, size=stream.inspector.total, sha256=stream.sha256())


def _video_transfer() -> TransferConfig:
    config = TransferConfig(
        multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=PARTS_IN_FLIGHT
    )
    # an unseekable stream's parts are held in memory until sent; boto3's config has no argument for
    # s3transfer's bound on them (10 by default), so it is set as s3transfer reads it
    config.max_in_memory_upload_chunks = PARTS_IN_FLIGHT
    return config


class _CheckedVideoStream(io.RawIOBase):
    """The downloaded chunks as the readable, unseekable file a managed upload takes, hashed and
    inspected on the way. The read that reaches the end checks the byte count and the MP4 verdict and
    raises ``VideoRejected`` instead of returning the last bytes: the transfer then fails before it
    completes (or, for a small video, before its single PUT), so a partial or broken download never
    replaces what the key holds."""

    def __init__(self, chunks: Iterable[bytes], expected_bytes: int | None):
        super().__init__()
        self._chunks = iter(chunks)
        self._expected_bytes = expected_bytes
        self._pieces: list[bytes] = []  # read ahead of the transfer; joined once into a part
        self._ended = False
        self._digest = hashlib.sha256()
        self.inspector = Mp4Inspector()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None else size
        while not self._ended and (wanted < 0 or self._buffered < wanted):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
                self._check_whole()
                break
            self.inspector.feed(chunk)
            self._digest.update(chunk)
            self._pieces.append(chunk)
        # one copy into the part, none kept behind it: a growing buffer's reallocations and a copy out of
        # it left far more memory behind than the parts in flight
        data = b"".join(self._pieces)
        self._pieces.clear()
        if 0 <= wanted < len(data):
            rest = data[wanted:]
            data = data[:wanted]
            self._pieces.append(rest)
        return data

    @property
    def _buffered(self) -> int:
        return sum(len(piece) for piece in self._pieces)  # a part's few chunks

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def _check_whole(self) -> None:
        problem = self.inspector.download_verdict(self._expected_bytes)
        if problem:
            raise VideoRejected(problem)
