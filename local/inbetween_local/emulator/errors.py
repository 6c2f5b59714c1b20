"""The provider's error vocabulary: HTTP status and default message per code (reference §4)."""

from __future__ import annotations

# code -> (HTTP status, default message). Messages are verbatim from the reference where it has them.
KNOWN_ERRORS: dict[str, tuple[int, str]] = {
    "InvalidParameter": (
        400,
        "Required parameter(s) missing or invalid, please check the request parameters.",
    ),
    "InvalidParameter.DataInspection": (
        400,
        "The media format is not supported or incorrect for the data inspection.",
    ),
    "DataInspectionFailed": (400, "Input or output data may contain inappropriate content."),
    # status and message not documented: 400 like its sibling DataInspectionFailed, message invented
    "IPInfringementSuspect": (400, "Input data is suspected of being involved in IP infringement."),
    "BadRequest.EmptyInput": (400, "Required input parameter missing from request."),
    "BadRequest.EmptyParameters": (400, 'Required parameter "parameters" missing from request.'),
    "BadRequest.EmptyModel": (400, 'Required parameter "model" missing from request.'),
    "InvalidURL": (400, "Invalid URL provided in your request."),
    # the temporary-storage page's answer to a bad URL or an oss:// URL sent without the resolve header
    "invalid_parameter_error": (
        400,
        "InternalError.Algo.InvalidParameter: The provided URL does not appear to be valid. "
        "Ensure it is correctly formatted.",
    ),
    "Arrearage": (400, "Access denied, plesase make sure your account is in good standing."),
    "UnsupportedOperation": (
        400,
        "Failed to cancel the task, please confirm if the task is in PENDING status.",
    ),
    "InvalidApiKey": (401, "Invalid API-key provided."),
    "AccessDenied": (403, "current user api does not support synchronous calls"),
    "Throttling": (429, "Requests throttling triggered."),
    "Throttling.RateQuota": (429, "Requests rate limit exceeded, please try again later."),
    "Throttling.AllocationQuota": (429, "Allocated quota exceeded, please increase your quota limit."),
    "InternalError": (
        500,
        "An internal error has occured, please try again later or contact service support.",
    ),
    "InternalError.Algo": (
        500,
        "An internal error has occured during execution, please try again later or contact service support.",
    ),
    # 503 has no documented code; this pair is an assumption
    "ServiceUnavailable": (503, "Service temporarily unavailable, please try again later."),
}

DOWNLOAD_FAILED_MESSAGE = "Unable to download the media resource"
# the error-code page's message for a media URL whose authorisation has lapsed (used for oss:// URLs that
# are unknown, expired after 48 h, or bound to another model)
MEDIA_AUTHORIZATION_MESSAGE = (
    "Don't have authorization to access the media resource during the data inspection process."
)
MEDIA_FORMAT_MESSAGE = "The media format is not supported or incorrect for the data inspection."


def status_for(code: str, default: int = 400) -> int:
    return KNOWN_ERRORS.get(code, (default, ""))[0]


def message_for(code: str) -> str:
    return KNOWN_ERRORS.get(code, (0, f"{code} (injected by the emulator)"))[1]


class ApiError(Exception):
    """An error answered as the provider's JSON envelope ``{"request_id", "code", "message"}``."""

    def __init__(self, code: str, message: str | None = None, http_status: int | None = None) -> None:
        self.code = code
        self.message = message if message is not None else message_for(code)
        self.http_status = http_status if http_status is not None else status_for(code)
        super().__init__(f"{self.http_status} {code}: {self.message}")


def invalid_parameter(message: str) -> ApiError:
    return ApiError("InvalidParameter", message, 400)
