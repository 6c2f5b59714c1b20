"""Singapore's API spells the 2.1 model wan2.1-kf2v-plus: what we send (create, task list) uses the
region's name, while job.json, metadata and notifications keep the catalog's name."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def env_overrides():
    return {"PROVIDER_REGION": "ap-southeast-1"}


def test_in_singapore_the_plus_model_is_sent_by_its_regional_name(pipeline, pair):
    # Given a job for wanx2.1-kf2v-plus on a Singapore deployment
    job_json = json.dumps({"model": "wanx2.1-kf2v-plus", "resolution": "720P"}).encode()
    pipeline.drop("sg-plus", dict(pair, **{"job.json": job_json}))

    # When it runs
    item = pipeline.run_until_final("sg-plus")

    # Then the provider was asked for wan2.1-kf2v-plus, and the job is stored under the catalog's name
    assert item["status"] == "STORED"
    task = pipeline.emulator.task(item["task_id"])
    assert task.model == "wan2.1-kf2v-plus"
    assert item["spec"]["model"] == "wanx2.1-kf2v-plus"
