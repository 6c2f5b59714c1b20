"""The error tree, classified by what the pipeline does next.

InbetweenError
 +-- ConfigError               a setting is missing or wrong (deployment problem)
 +-- InvalidJob                the drop itself is wrong: reject the job, tell the user what to fix
 |    +-- InvalidImage         a frame is unreadable, the wrong format, too big or too small
 +-- ProviderError             anything the provider said or failed to say
 |    +-- ProviderUnavailable  retryable: throttling, 5xx, timeouts, connection errors
 |    |    +-- ProviderThrottled   429: no slot or over the rate; never fails a job
 |    +-- ProviderRejected     permanent: InvalidParameter, InvalidApiKey, DataInspectionFailed, Arrearage...
 +-- AlreadyClaimed            another worker owns this step: acknowledge silently
 +-- VideoDownloadFailed       retryable: the finished video could not be fetched just now
 +-- VideoLinkExpired          the provider's video link is dead (24 hours): the job expires
 +-- StorageError              retryable: S3 could not be read or written just now
 +-- VideoRejected             retryable: the downloaded bytes are not the whole MP4 promised

Each class carries ``retryable``. Messages never contain secrets: the provider client builds them from
the provider's code/message and our own text only.
"""

from __future__ import annotations


class InbetweenError(Exception):
    retryable = False


class ConfigError(InbetweenError):
    pass


class InvalidJob(InbetweenError):
    """The user's drop cannot become a video. ``hint`` says what to do about it."""

    def __init__(self, message: str, *, code: str = "InvalidJob", hint: str = "", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.field = field


class InvalidImage(InvalidJob):
    def __init__(self, message: str, *, code: str = "InvalidImage", hint: str = "", field: str | None = None):
        super().__init__(message, code=code, hint=hint, field=field)


class ProviderError(InbetweenError):
    # True when a create call failed after its body may have reached the provider (read timeout, dropped
    # connection, 5xx): the task may exist, so reconcile with the task list instead of resubmitting.
    maybe_created: bool = False
    # The provider's Retry-After (seconds), set by the client on retryable errors that carried one.
    retry_after_s: float | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
        task_id: str | None = None,
        maybe_created: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.status_code = status_code
        self.task_id = task_id
        self.maybe_created = maybe_created

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class ProviderUnavailable(ProviderError):
    retryable = True


class ProviderThrottled(ProviderUnavailable):
    pass


class ProviderRejected(ProviderError):
    retryable = False


class AlreadyClaimed(InbetweenError):
    pass


class VideoDownloadFailed(InbetweenError):
    """The finished video could not be fetched just now (network, 5xx): the completion retries."""

    retryable = True


class VideoLinkExpired(InbetweenError):
    """The provider's video link no longer answers (its links last 24 hours): the job expires."""


class StorageError(InbetweenError):
    """S3 could not be read or written just now: the step is retried."""

    retryable = True


class VideoRejected(InbetweenError):
    """The bytes we received are not the complete video the provider promised: fetched again."""

    retryable = True
