"""The AWS adapters on moto in-process (``mock_aws``: no server, no socket), and the jobs table as
template.yaml defines it, so that a change of its keys or index reaches these tests."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from inbetween_local.stack.template import LocalTemplate
from moto import mock_aws

REGION = "us-east-1"


@pytest.fixture(scope="session")
def jobs_table_definition() -> dict[str, Any]:
    """The jobs table's properties in template.yaml (keys, attribute types, the due index)."""
    template = LocalTemplate.load()
    (logical_id,) = template.logical_ids("AWS::DynamoDB::Table")
    return template.resources[logical_id]["Properties"]


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One session for all these tests: it caches the service models, so each test's clients are cheap.
    (moto is imported first: its request stubber is among the handlers every new session gets.)"""
    return boto3.session.Session(region_name=REGION)


@pytest.fixture
def aws(boto_session) -> Iterator[boto3.session.Session]:
    """Fresh moto backends for each test, in-process."""
    with mock_aws():
        yield boto_session


@pytest.fixture
def create_jobs_table(aws, jobs_table_definition) -> Callable[[str], Any]:
    """Creates the jobs table under ``name`` as the template does; returns the DynamoDB client."""

    def create(name: str = "jobs") -> Any:
        props = jobs_table_definition
        client = aws.client("dynamodb")
        client.create_table(
            TableName=name,
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            BillingMode=props["BillingMode"],
        )
        return client

    return create


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mp4(payload: bytes = b"\x00" * 4096) -> bytes:
    """The smallest file the MP4 check takes for a video: ftyp, a moov with a 'vide' handler, an mdat."""
    hdlr = box(b"hdlr", b"\0" * 8 + b"vide" + b"\0" * 12 + b"VideoHandler\0")
    moov = box(b"moov", box(b"trak", box(b"mdia", hdlr)))
    return box(b"ftyp", b"isom\0\0\x02\0isomiso2mp41") + moov + box(b"mdat", payload)


@pytest.fixture
def make_mp4() -> Callable[..., bytes]:
    return mp4
