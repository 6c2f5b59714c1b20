"""The account's live limits: list-quotas read into ``ModelQuota`` (tightest of account and workspace),
over either documented path, and cached for minutes by ``LiveQuotas``."""

from __future__ import annotations

import pytest
from inbetween.errors import ProviderRejected, ProviderUnavailable
from inbetween.provider.models import ModelQuota
from inbetween.provider.quotas import QUOTA_REFRESH_S, LiveQuotas
from provider_fakes import Recorder, json_response


def limit(concurrency=5, rps=5, period=1, queue=500) -> dict:
    return {
        "request_limit": rps,
        "request_limit_period": period,
        "usage_limit": None,
        "usage_limit_field": None,
        "usage_limit_period": None,
        "async_user_queue_limit": queue,
        "async_user_concurrency_limit": concurrency,
    }


def answer(*rows: dict) -> dict:
    return {
        "request_id": "r-1",
        "success": True,
        "output": {"total": len(rows), "page_no": 1, "page_size": 20, "quotas": list(rows)},
    }


def row(model="wan2.7-i2v", model_limit=None, workspace_limit=None) -> dict:
    return {
        "model": model,
        "workspace_id": "llm-x",
        "model_limit": model_limit if model_limit is not None else limit(),
        "workspace_limit": workspace_limit,
    }


# --- the answer's shape ---------------------------------------------------------------------------------


def test_a_row_gives_concurrency_submit_rate_and_queue():
    quota = ModelQuota.from_rows(answer(row()), "wan2.7-i2v")
    assert quota == ModelQuota("wan2.7-i2v", concurrency=5, submit_per_s=5.0, queue=500)


def test_the_tightest_of_account_and_workspace_limits_counts():
    # a workspace override of 3 in flight and 60 per minute, under an account cap of 5 and 5/s
    body = answer(row(workspace_limit=limit(concurrency=3, rps=60, period=60, queue=None)))
    assert ModelQuota.from_rows(body, "wan2.7-i2v") == ModelQuota("wan2.7-i2v", 3, 1.0, 500)


def test_only_the_exact_model_counts_and_an_unset_figure_is_none():
    body = answer(
        row("wan2.7-i2v-2026-04-25", limit(concurrency=1)),
        row("wan2.2-kf2v-flash", limit(concurrency=2, rps=None, queue=None)),
    )
    assert ModelQuota.from_rows(body, "wan2.7-i2v") is None
    assert ModelQuota.from_rows(body, "wan2.2-kf2v-flash") == ModelQuota("wan2.2-kf2v-flash", 2, None, None)


@pytest.mark.parametrize("bad", [0, -1, "many", True, None])
def test_a_concurrency_that_is_not_a_positive_number_is_unknown(bad):
    quota = ModelQuota.from_rows(answer(row(model_limit=limit(concurrency=bad))), "wan2.7-i2v")
    assert quota is not None and quota.concurrency is None


def test_an_answer_without_a_quota_list_is_malformed():
    with pytest.raises(ValueError, match="quotas"):
        ModelQuota.from_rows({"output": {"total": 0}}, "wan2.7-i2v")


# --- the client ------------------------------------------------------------------------------------------


def test_the_client_asks_for_the_exact_model_on_the_english_path_first(make_client):
    recorder = Recorder(json_response(200, answer(row())))
    client = make_client(recorder)
    assert client.get_quota("wan2.7-i2v") == ModelQuota("wan2.7-i2v", 5, 5.0, 500)
    (request,) = recorder.requests
    assert (request.method, request.url.path, dict(request.url.params)) == (
        "GET",
        "/api/v1/quotas",
        {"model": "wan2.7-i2v"},
    )


def test_a_404_on_one_path_tries_the_other_and_keeps_to_it(make_client):
    not_found = json_response(404, {"code": "NotFound", "message": "no such API"})
    recorder = Recorder(not_found, json_response(200, answer(row())), json_response(200, answer(row())))
    client = make_client(recorder)
    assert client.get_quota("wan2.7-i2v") is not None
    assert client.get_quota("wan2.7-i2v") is not None
    assert [r.url.path for r in recorder.requests] == [
        "/api/v1/quotas",
        "/api/v1/models/limits",
        "/api/v1/models/limits",
    ]


def test_neither_path_answering_is_a_clear_rejection(make_client):
    client = make_client(Recorder(json_response(404, {"code": "NotFound", "message": "no"})))
    with pytest.raises(ProviderRejected, match="neither /quotas nor /models/limits"):
        client.get_quota("wan2.7-i2v")


def test_a_refused_key_is_not_taken_for_a_missing_path(make_client):
    recorder = Recorder(json_response(403, {"code": "AccessDenied", "message": "no permission"}))
    client = make_client(recorder)
    with pytest.raises(ProviderRejected) as raised:
        client.get_quota("wan2.7-i2v")
    assert raised.value.status_code == 403 and len(recorder.requests) == 1


# --- the cache ---------------------------------------------------------------------------------------------


class Reads:
    def __init__(self, *results):
        self.results = list(results)
        self.models: list[str] = []

    def __call__(self, model: str) -> ModelQuota | None:
        self.models.append(model)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


FIVE = ModelQuota("wan2.7-i2v", 5, 5.0, 500)
EIGHT = ModelQuota("wan2.7-i2v", 8, 5.0, 500)


def test_the_provider_is_read_at_most_once_per_refresh_period_and_model():
    reads, now = Reads(FIVE, EIGHT, None), Now()
    quotas = LiveQuotas(reads, now=now)
    assert [quotas.quota_for("wan2.7-i2v") for _ in range(3)] == [FIVE] * 3
    now.t += QUOTA_REFRESH_S - 1
    assert quotas.quota_for("wan2.7-i2v") == FIVE
    now.t += 1  # a raised quota is seen within the refresh period
    assert quotas.quota_for("wan2.7-i2v") == EIGHT
    assert quotas.quota_for("wan2.2-kf2v-flash") is None  # its own read, once
    assert quotas.quota_for("wan2.2-kf2v-flash") is None
    assert reads.models == ["wan2.7-i2v", "wan2.7-i2v", "wan2.2-kf2v-flash"]
    assert (
        QUOTA_REFRESH_S <= 600
    )  # "at most every few minutes" is also "at least": a raise is not missed for long


def test_a_failed_read_keeps_the_last_figures_and_waits_a_period_before_the_next():
    outage = ProviderUnavailable("DashScope list quotas failed: HTTP 503", status_code=503)
    reads, now = Reads(FIVE, outage, EIGHT), Now()
    quotas = LiveQuotas(reads, now=now)
    assert quotas.quota_for("wan2.7-i2v") == FIVE
    now.t += QUOTA_REFRESH_S
    assert quotas.quota_for("wan2.7-i2v") == FIVE  # the read failed: the last figures stay
    now.t += QUOTA_REFRESH_S / 2
    assert quotas.quota_for("wan2.7-i2v") == FIVE  # and the provider is not asked again yet
    now.t += QUOTA_REFRESH_S / 2
    assert quotas.quota_for("wan2.7-i2v") == EIGHT
    assert len(reads.models) == 3


def test_a_failed_first_read_means_unknown_so_the_published_figures_apply(caplog):
    reads = Reads(ProviderRejected("DashScope list quotas failed: no permission", status_code=403))
    quotas = LiveQuotas(reads, now=Now())
    assert quotas.quota_for("wan2.7-i2v") is None
    assert quotas.quota_for("wan2.7-i2v") is None
    assert len(reads.models) == 1
    assert "using the published figures" in caplog.text
