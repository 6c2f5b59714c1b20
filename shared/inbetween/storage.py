"""S3: the inbox (frames, error reports) and the output bucket (videos, metadata)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from inbetween.errors import InbetweenError
from inbetween.mp4 import Mp4Inspector

PART_SIZE = 8 * 1024 * 1024


class StorageError(InbetweenError):
    retryable = True


class VideoRejected(InbetweenError):
    """The bytes we received are not the complete video the provider promised."""

    retryable = True


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: float


@dataclass(frozen=True, slots=True)
class StoredVideo:
    bucket: str
    key: str
    size: int
    sha256: str
    version_id: str | None


class Blobs:
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
        data = body.read(max_bytes + 1) if max_bytes is not None else body.read()
        body.close()
        return data

    def presign_get(self, bucket: str, key: str, ttl_s: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(ttl_s)
        )

    def put_json(self, bucket: str, key: str, data: dict[str, Any]) -> None:
        body = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode()
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def store_video(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        expected_bytes: int | None,
        metadata: dict[str, str] | None = None,
    ) -> StoredVideo:
        """Stream ``chunks`` into a multipart upload, part by part (memory stays at one part), and only
        complete it once the byte count matches and the bytes are an MP4 with a video track."""
        upload = self._s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="video/mp4", Metadata=metadata or {}
        )
        upload_id = upload["UploadId"]
        inspector = Mp4Inspector()
        digest = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        pending = bytearray()

        def flush(data: bytes) -> None:
            number = len(parts) + 1
            resp = self._s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
            parts.append({"PartNumber": number, "ETag": resp["ETag"]})

        try:
            for chunk in chunks:
                inspector.feed(chunk)
                digest.update(chunk)
                pending += chunk
                if len(pending) >= PART_SIZE:
                    flush(bytes(pending[:PART_SIZE]))
                    del pending[:PART_SIZE]
            if expected_bytes is not None and inspector.total != expected_bytes:
                raise VideoRejected(
                    f"video download incomplete: got {inspector.total} of {expected_bytes} bytes"
                )
            problem = inspector.verdict()
            if problem:
                raise VideoRejected(problem)
            if pending or not parts:
                flush(bytes(pending))
            done = self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError:
                pass
            raise
        return StoredVideo(
            bucket=bucket,
            key=key,
            size=inspector.total,
            sha256=digest.hexdigest(),
            version_id=done.get("VersionId"),
        )
