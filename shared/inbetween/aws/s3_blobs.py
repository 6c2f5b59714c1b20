"""S3: the inbox (frames, error reports) and the output bucket (videos, metadata)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from inbetween.domain.models import ObjectHead, ObjectInfo, StoredVideo
from inbetween.domain.mp4_check import Mp4Inspector
from inbetween.errors import StorageError, VideoRejected

PART_SIZE = 8 * 1024 * 1024
# concurrent part uploads; memory is about (this + 2) parts, 56 MiB at 5 (the completion function has 256 MB).
# 3 streamed 1 GiB at ~70 MiB/s into moto where 5 reached ~130 (make bench, completion); s3transfer uses 10
PARTS_IN_FLIGHT = 5


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
        """Stream ``chunks`` into a multipart upload and only complete it once the byte count matches and
        the bytes are an MP4 with a video track. Up to ``PARTS_IN_FLIGHT`` parts upload at once while the
        next one is read (a bounded queue: memory stays at a few parts, whatever the video's size)."""
        upload = self._s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="video/mp4", Metadata=metadata or {}
        )
        upload_id = upload["UploadId"]
        inspector = Mp4Inspector()
        digest = hashlib.sha256()
        in_flight: deque[tuple[int, Future[dict[str, Any]]]] = deque()
        parts: list[dict[str, Any]] = []
        pending = bytearray()
        numbers = itertools.count(1)

        def send(number: int, data: bytes | bytearray) -> dict[str, Any]:
            part: dict[str, Any] = self._s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
            return part

        def collect_oldest() -> None:
            number, future = in_flight.popleft()
            parts.append({"PartNumber": number, "ETag": future.result()["ETag"]})

        pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="upload-part")

        def flush(data: bytes | bytearray) -> None:
            while len(in_flight) >= PARTS_IN_FLIGHT:
                collect_oldest()
            number = next(numbers)
            in_flight.append((number, pool.submit(send, number, data)))

        try:
            for chunk in chunks:
                inspector.feed(chunk)
                digest.update(chunk)
                pending += chunk
                if len(pending) >= PART_SIZE:
                    part, pending = pending, bytearray()  # hand the buffer over whole: no copy of a part
                    flush(part)
            if expected_bytes is not None and inspector.total != expected_bytes:
                raise VideoRejected(
                    f"video download incomplete: got {inspector.total} of {expected_bytes} bytes"
                )
            problem = inspector.verdict()
            if problem:
                raise VideoRejected(problem)
            if pending or not (parts or in_flight):
                flush(pending)
            while in_flight:
                collect_oldest()
            done = self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            for _, future in in_flight:
                future.cancel()
            pool.shutdown(wait=True)  # no part may land after the abort
            try:
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError:
                pass
            raise
        finally:
            pool.shutdown(wait=True)
        return StoredVideo(
            bucket=bucket,
            key=key,
            size=inspector.total,
            sha256=digest.hexdigest(),
            version_id=done.get("VersionId"),
        )
