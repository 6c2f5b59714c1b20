"""The provider's temporary storage for local files (reference §7.5-7.6): getPolicy, the form upload to
the host it names, and the ``oss://`` URLs that come out of it.

The SDK turns a ``file://`` input into three calls: ``GET {base}/uploads?action=getPolicy&model=M``
(answered by ``issue``), a multipart ``POST`` of the file to ``data.upload_host`` with no Authorization
header (``accept``; the emulator's own ``/oss-upload`` path on loopback), then the create request with
``oss://<key>`` and ``X-DashScope-OssResourceResolve: enable`` (``resolve``).

Checked like the real thing: the policy is a base64 JSON document signed with HMAC-SHA1 (OSS's
PostObject scheme), it expires after ``upload_policy_ttl_s`` (403 "Invalid according to Policy: Policy
expired."), the key must lie in the issued ``upload_dir``, the size within ``max_file_size_mb``, and
``x-oss-forbid-overwrite: true`` refuses an existing key (409 ``FileAlreadyExists``). A stored file
answers for ``oss_file_ttl_s`` (48 h) and only to a create for the model named at getPolicy. All keys
of the emulator are one account, so the account binding always holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from .errors import MEDIA_AUTHORIZATION_MESSAGE

OSS_PREFIX = "oss://"
UPLOAD_PATH = "/oss-upload"
BUCKET = "dashscope-instant"
_CHINA_TIME = timezone(timedelta(hours=8))


class UploadRefused(Exception):
    """An upload the OSS-like host refuses: answered as OSS's XML error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{status} {code}: {message}")


class OssUnavailable(Exception):
    """An ``oss://`` URL that does not resolve: unknown key, expired, or uploaded for another model."""

    def __init__(self, message: str = MEDIA_AUTHORIZATION_MESSAGE) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    data: bytes
    content_type: str
    model: str
    api_key_id: str
    uploaded_at: float


@dataclass(frozen=True, slots=True)
class _Grant:
    upload_dir: str
    model: str
    api_key_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    filename: str | None
    data: bytes


class UploadStore:
    def __init__(
        self,
        *,
        secret: bytes,
        access_key_id: str,
        policy_ttl_s: float,
        file_ttl_s: float,
        max_file_size_mb: int,
        capacity_limit_mb: int,
        account: str,
    ) -> None:
        self._secret = secret
        self._access_key_id = access_key_id
        self._policy_ttl_s = policy_ttl_s
        self._file_ttl_s = file_ttl_s
        self._max_file_size_mb = max_file_size_mb
        self._capacity_limit_mb = capacity_limit_mb
        self._account = account
        self._grants: dict[str, _Grant] = {}
        self._files: dict[str, StoredFile] = {}
        self._lock = threading.Lock()
        self.policies_issued = 0
        self.uploads = 0

    # --- getPolicy ---------------------------------------------------------------------------------
    def issue(self, model: str, api_key_id: str, now: float, upload_host: str) -> dict[str, object]:
        """The ``data`` object of a getPolicy answer (every key the SDK reads, plus the documented rest)."""
        day = datetime.fromtimestamp(now, _CHINA_TIME).strftime("%Y-%m-%d")
        upload_dir = f"{BUCKET}/{self._account}/{day}/{uuid.uuid4().hex[:8]}"
        expires_at = now + self._policy_ttl_s
        document = {
            "expiration": datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                {"bucket": BUCKET},
                ["starts-with", "$key", upload_dir],
                ["content-length-range", 0, self._max_file_size_mb * 1024 * 1024],
            ],
        }
        policy = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        with self._lock:
            self._grants[policy] = _Grant(upload_dir, model, api_key_id, expires_at)
            self.policies_issued += 1
        return {
            "policy": policy,
            "signature": self._sign(policy),
            "upload_dir": upload_dir,
            "upload_host": upload_host,
            "expire_in_seconds": int(self._policy_ttl_s),
            "max_file_size_mb": self._max_file_size_mb,
            "capacity_limit_mb": self._capacity_limit_mb,
            "oss_access_key_id": self._access_key_id,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    def _sign(self, policy: str) -> str:
        return base64.b64encode(hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()).decode()

    # --- the upload host -----------------------------------------------------------------------------
    def accept(self, parts: list[FormPart], now: float) -> StoredFile:
        fields = {part.name: part for part in parts}
        file = fields.get("file")
        if file is None:
            raise UploadRefused(400, "InvalidArgument", "The form has no file field.")
        text = {name: part.data.decode("utf-8", "replace") for name, part in fields.items() if name != "file"}
        policy, signature = text.get("policy", ""), text.get("Signature", "")
        if text.get("OSSAccessKeyId") != self._access_key_id:
            raise UploadRefused(
                403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist."
            )
        if not policy or not hmac.compare_digest(signature, self._sign(policy)):
            raise UploadRefused(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        with self._lock:
            grant = self._grants.get(policy)
        if grant is None:  # signed by this emulator but forgotten: treat like a bad policy
            raise UploadRefused(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed.")
        if now > grant.expires_at:
            raise UploadRefused(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = text.get("key", "")
        if not key.startswith(grant.upload_dir + "/") or key == grant.upload_dir + "/":
            raise UploadRefused(
                403,
                "AccessDenied",
                'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key"]',
            )
        if len(file.data) > self._max_file_size_mb * 1024 * 1024:
            raise UploadRefused(
                400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
            )
        stored = StoredFile(
            key=key,
            data=file.data,
            content_type=text.get("x-oss-content-type") or "application/octet-stream",
            model=grant.model,
            api_key_id=grant.api_key_id,
            uploaded_at=now,
        )
        with self._lock:
            self._purge(now)
            if key in self._files and text.get("x-oss-forbid-overwrite", "").lower() == "true":
                raise UploadRefused(409, "FileAlreadyExists", "The object you specified already exists.")
            self._files[key] = stored
            self.uploads += 1
        return stored

    # --- create requests -------------------------------------------------------------------------------
    def resolve(self, url: str, model: str, now: float) -> StoredFile:
        key = url[len(OSS_PREFIX) :]
        with self._lock:
            self._purge(now)
            stored = self._files.get(key)
        if stored is None or stored.model != model:
            raise OssUnavailable()
        return stored

    def _purge(self, now: float) -> None:
        for key in [key for key, f in self._files.items() if now - f.uploaded_at > self._file_ttl_s]:
            del self._files[key]
        for policy in [p for p, g in self._grants.items() if now > g.expires_at + self._file_ttl_s]:
            del self._grants[policy]

    def files(self) -> dict[str, StoredFile]:
        with self._lock:
            return dict(self._files)


_DISPOSITION_PARAM = re.compile(r';\s*([\w-]+)="([^"]*)"')


def parse_multipart(content_type: str, body: bytes) -> list[FormPart]:
    """The parts of a ``multipart/form-data`` body (as requests and httpx send it)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or found is None:
        raise UploadRefused(400, "InvalidArgument", "The request is not multipart/form-data.")
    delimiter = b"--" + found.group(1).encode()
    parts: list[FormPart] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        data = data.removesuffix(b"\r\n")
        name = filename = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                params = dict(_DISPOSITION_PARAM.findall(line))
                name, filename = params.get("name"), params.get("filename")
        if name is not None:
            parts.append(FormPart(name, filename, data))
    return parts
