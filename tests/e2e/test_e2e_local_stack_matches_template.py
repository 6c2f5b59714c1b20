"""The local stack is template.yaml: every bucket, queue, table, topic, secret and notification it
declares exists locally with the same keys and settings (read back from moto, compared to the template
as cfn-lint decodes it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode_str
from inbetween_local.stack import LocalTemplate

from tests.e2e.conftest import STACK_MARKS

pytestmark = STACK_MARKS

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def template():
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert decoded is not None, matches
    return decoded


def of_type(template, kind):
    """Resources of ``kind`` that the shared stack creates: it runs with the default parameters, so
    resources under a false condition (PushOn, HasAlarmEmail) are absent."""
    defaults = LocalTemplate.load(TEMPLATE)
    return {
        lid: res.get("Properties", {})
        for lid, res in template["Resources"].items()
        if res["Type"] == kind and defaults.is_created(lid)
    }


def name_of(stack, template, lid, prop):
    """What the resource is called locally: its template name (pseudo parameters substituted), or the
    CloudFormation-style generated name <stack>-<LogicalId>."""
    props = template["Resources"][lid].get("Properties", {})
    if prop in props:
        return (
            props[prop]["Fn::Sub"]
            .replace("${AWS::StackName}", stack.options.stack_name)
            .replace("${AWS::AccountId}", ACCOUNT)
        )
    return f"{stack.options.stack_name}-{lid}"


def queue_arn(stack, template, lid):
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name_of(stack, template, lid, 'QueueName')}"


def test_every_queue_and_dead_letter_queue_has_the_template_settings(stack, template):
    # Given the running local stack
    sqs = stack.client("sqs")
    queues = of_type(template, "AWS::SQS::Queue")
    assert queues
    for lid, props in queues.items():
        # When its queue's attributes are read back
        url = sqs.get_queue_url(QueueName=name_of(stack, template, lid, "QueueName"))["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # Then they are the template's
        for name in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if name in props:
                assert attrs[name] == str(props[name]), (lid, name)
        if "RedrivePolicy" in props:
            redrive = json.loads(attrs["RedrivePolicy"])
            target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert redrive["deadLetterTargetArn"] == queue_arn(stack, template, target)
            assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]


def test_every_bucket_has_the_template_settings_and_notifications(stack, template):
    s3 = stack.client("s3")
    buckets = of_type(template, "AWS::S3::Bucket")
    assert buckets
    for lid, props in buckets.items():
        name = name_of(stack, template, lid, "BucketName")
        s3.head_bucket(Bucket=name)
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        expected_sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert (
            rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
            == expected_sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
        )
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert block == dict(props["PublicAccessBlockConfiguration"])
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == props["VersioningConfiguration"]["Status"]
        notification = s3.get_bucket_notification_configuration(Bucket=name)
        expected = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        got = notification.get("QueueConfigurations", [])
        assert len(got) == len(expected), lid
        for want, have in zip(expected, got, strict=True):
            assert have["QueueArn"] == queue_arn(stack, template, want["Queue"]["Fn::GetAtt"][0])
            assert have["Events"] == [want["Event"]]
            want_rules = {(r["Name"], r["Value"]) for r in want["Filter"]["S3Key"]["Rules"]}
            have_rules = {(r["Name"].lower(), r["Value"]) for r in have["Filter"]["Key"]["FilterRules"]}
            assert have_rules == want_rules


def test_the_jobs_table_has_the_template_keys_indexes_billing_and_ttl(stack, template):
    ddb = stack.client("dynamodb")
    tables = of_type(template, "AWS::DynamoDB::Table")
    assert tables
    for lid, props in tables.items():
        name = name_of(stack, template, lid, "TableName")
        table = ddb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == [dict(k) for k in props["KeySchema"]]
        assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
            (a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]
        }
        assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
        want_gsis = {g["IndexName"]: g for g in props.get("GlobalSecondaryIndexes", [])}
        have_gsis = {g["IndexName"]: g for g in table.get("GlobalSecondaryIndexes", [])}
        assert set(have_gsis) == set(want_gsis)
        for index, want in want_gsis.items():
            assert have_gsis[index]["KeySchema"] == [dict(k) for k in want["KeySchema"]]
            assert have_gsis[index]["Projection"]["ProjectionType"] == want["Projection"]["ProjectionType"]
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
        assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_every_topic_and_secret_exists_and_the_secrets_hold_usable_values(stack, template):
    sns = stack.client("sns")
    topic_arns = {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    for lid in of_type(template, "AWS::SNS::Topic"):
        assert f"arn:aws:sns:us-east-1:{ACCOUNT}:{stack.options.stack_name}-{lid}" in topic_arns
    secrets = stack.client("secretsmanager")
    names = {s["Name"]: s["ARN"] for s in secrets.list_secrets()["SecretList"]}
    for lid, props in of_type(template, "AWS::SecretsManager::Secret").items():
        name = f"{stack.options.stack_name}-{lid}"
        assert name in names
        value = secrets.get_secret_value(SecretId=names[name])["SecretString"]
        generate = props.get("GenerateSecretString")
        if generate:
            # as GenerateSecretString would: the length asked for, no punctuation
            assert re.fullmatch(rf"[A-Za-z0-9]{{{generate['PasswordLength']}}}", value)
        else:
            assert value == stack.api_key  # the DashScope key secret holds the emulator's key


def test_functions_get_the_template_environment_resolved_to_local_resources(stack, template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    env = stack.environment
    for name, value in variables.items():
        assert name in env, name
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in template["Parameters"]:
            assert env[name] == str(template["Parameters"][value["Ref"]].get("Default", "")) or name in (
                "PROVIDER_BASE_URL",
                "SETTLE_SECONDS",
            )
    assert env["JOBS_TABLE"] == stack.table_name
    assert env["INBOX_BUCKET"] == stack.inbox_bucket
    assert env["OUTPUT_BUCKET"] == stack.output_bucket
    assert env["NOTIFY_TOPIC_ARN"] == stack.topic_arn
    assert env["INTAKE_QUEUE_URL"] == stack.queue_urls["IntakeQueue"]
    assert env["COMPLETION_QUEUE_URL"] == stack.queue_urls["CompletionQueue"]
    assert env["STITCH_QUEUE_URL"] == stack.queue_urls["StitchQueue"]
    assert env["PROVIDER_BASE_URL"] == stack.emulator_url
    # every function of the template is running, with its SQS sources and schedules
    functions = of_type(template, "AWS::Serverless::Function")
    assert set(stack.functions) == set(functions)
    sources = {(p.function.definition.logical_id, p.source.queue_logical_id) for p in stack.pumps}
    for lid, props in functions.items():
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "SQS":
                assert (lid, event["Properties"]["Queue"]["Fn::GetAtt"][0]) in sources
            if event["Type"] == "Schedule":
                assert any(s.function.definition.logical_id == lid for s in stack.schedulers)


def test_each_function_runs_with_its_template_layers_on_the_path(stack, template):
    # Given the layers the template gives each function (SAM appends a function's Layers to the Globals)
    root = TEMPLATE.parent
    globals_layers = template["Globals"]["Function"].get("Layers", [])
    for lid, props in of_type(template, "AWS::Serverless::Function").items():
        refs = [layer["Ref"] for layer in [*globals_layers, *props.get("Layers", [])]]
        folders = [root / template["Resources"][ref]["Properties"]["ContentUri"] for ref in refs]
        # Then the running function has their folders (what Lambda unpacks under /opt/python)
        assert list(stack.functions[lid].definition.layer_paths) == folders, lid
    # the stitch function's media layer (PyAV's inbetween_media) among them
    assert (root / "media") in stack.functions["StitchFunction"].definition.layer_paths
