"""template.yaml keeps its promises: least-privilege roles, hardened storage, queues that survive failures,
the environment the code reads, and a template that cfn-lint accepts.

The template is read with cfn-lint's decoder, which understands !Ref, !Sub and !GetAtt (they come back as
{"Ref": ...}, {"Fn::Sub": ...}, {"Fn::GetAtt": [...]}).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cfnlint.decode import decode_str
from inbetween.config import _REQUIRED, load_settings
from inbetween.domain.catalog import MODELS, REGION_BASE_URLS, model_spec
from inbetween.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
FUNCTIONS = ("SubmitFunction", "PollerFunction", "CompletionFunction", "StitchFunction")
# created only with PushEnabled=true; its rows in the IAM matrix are checked like the others'
PUSH_FUNCTIONS = ("ProviderEventsFunction",)

# --- what each function may do: (IAM action, resource) where a resource is a logical id, optionally with
# the path the statement appends to its ARN ("InboxBucket/inbox/*"), or "*".
_TRACES = {("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")}
_JOB_TABLE = {
    (f"dynamodb:{action}", "JobsTable")
    for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem", "Query")
} | {("dynamodb:Query", "JobsTable/index/due-index")}
_INBOX_AND_RESULTS = {
    ("s3:ListBucket", "InboxBucket"),
    ("s3:GetObject", "InboxBucket/inbox/*"),
    ("s3:PutObject", "InboxBucket/inbox/*"),
    ("s3:PutObject", "OutputBucket/results/*"),
    ("s3:GetObject", "OutputBucket/results/*"),
}
# every function that can finish a job may finish a film run's last shot and hand the film to the stitch
_HANDS_FILMS_TO_THE_STITCH = {("sqs:SendMessage", "StitchQueue")}
# continue mode: whoever finishes a film's shot may make the next shot's job and hand it to admission
_HANDS_CONTINUED_SHOTS_ON = {("sqs:SendMessage", "IntakeQueue")}
_BOTH_SECRETS = {
    ("secretsmanager:GetSecretValue", "DashScopeApiKeySecret"),
    ("secretsmanager:GetSecretValue", "WebhookSigningSecret"),
}


def _consumes(queue: str) -> set[tuple[str, str]]:
    return {(f"sqs:{action}", queue) for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")}


def _logs(log_group: str) -> set[tuple[str, str]]:
    return {("logs:CreateLogStream", log_group), ("logs:PutLogEvents", log_group)}


EXPECTED_PERMISSIONS: dict[str, set[tuple[str, str]]] = {
    "SubmitFunction": _logs("SubmitLogGroup")
    | _TRACES
    | _consumes("IntakeQueue")
    | {("sqs:SendMessage", "IntakeQueue"), ("sns:Publish", "NotifyTopic")}
    | _HANDS_FILMS_TO_THE_STITCH
    | _INBOX_AND_RESULTS
    | _JOB_TABLE
    | _BOTH_SECRETS,
    "PollerFunction": _logs("PollerLogGroup")
    | _TRACES
    | {("sqs:SendMessage", "CompletionQueue"), ("sns:Publish", "NotifyTopic")}
    | _HANDS_FILMS_TO_THE_STITCH
    | _HANDS_CONTINUED_SHOTS_ON
    | _INBOX_AND_RESULTS
    | _JOB_TABLE
    | _BOTH_SECRETS,
    "CompletionFunction": _logs("CompletionLogGroup")
    | _TRACES
    | _consumes("CompletionQueue")
    | {
        ("s3:ListBucket", "OutputBucket"),
        ("s3:PutObject", "OutputBucket/results/*"),
        ("s3:GetObject", "OutputBucket/results/*"),
        ("s3:AbortMultipartUpload", "OutputBucket/results/*"),
        ("s3:ListMultipartUploadParts", "OutputBucket/results/*"),
        ("s3:PutObject", "InboxBucket/inbox/*"),
        ("sns:Publish", "NotifyTopic"),
        ("secretsmanager:GetSecretValue", "WebhookSigningSecret"),
        # a resumed endpoint's waiting webhooks: each one settled hands the next to this queue
        ("sqs:SendMessage", "CompletionQueue"),
    }
    | _HANDS_FILMS_TO_THE_STITCH
    | _HANDS_CONTINUED_SHOTS_ON
    | _JOB_TABLE,
    # the clips and keyframes in; the film, its pictures (or error.json) out; the run's end announced
    "StitchFunction": _logs("StitchLogGroup")
    | _TRACES
    | _consumes("StitchQueue")
    | {
        ("sqs:SendMessage", "CompletionQueue"),  # a failed film webhook's retries
        ("sqs:SendMessage", "IntakeQueue"),  # continue mode: the next shot, once its tail is cut
        ("sqs:SendMessage", "StitchQueue"),
        ("s3:GetObject", "InboxBucket/inbox/*"),
        ("s3:PutObject", "InboxBucket/inbox/*/error.json"),
        ("s3:GetObject", "OutputBucket/results/*"),
        ("s3:PutObject", "OutputBucket/results/*"),
        ("s3:AbortMultipartUpload", "OutputBucket/results/*"),
        ("dynamodb:GetItem", "JobsTable"),
        ("dynamodb:PutItem", "JobsTable"),
        ("dynamodb:UpdateItem", "JobsTable"),
        ("sns:Publish", "NotifyTopic"),
        ("secretsmanager:GetSecretValue", "WebhookSigningSecret"),
    },
    # one task query, then the completion queue, or a final state (error.json, SNS, webhook) for a failure
    "ProviderEventsFunction": _logs("ProviderEventsLogGroup")
    | _TRACES
    | {
        ("sqs:SendMessage", "CompletionQueue"),
        ("sqs:SendMessage", "IntakeQueue"),
        ("sqs:SendMessage", "StitchQueue"),
        ("dynamodb:GetItem", "JobsTable"),
        ("dynamodb:PutItem", "JobsTable"),
        ("dynamodb:UpdateItem", "JobsTable"),
        ("s3:PutObject", "InboxBucket/inbox/*"),
        ("s3:PutObject", "OutputBucket/results/*"),
        ("s3:GetObject", "OutputBucket/results/*"),  # continue mode: is the tail cut yet?
        ("sns:Publish", "NotifyTopic"),
        ("secretsmanager:GetSecretValue", "PushSecret"),
    }
    | _BOTH_SECRETS,
}
# AWS offers no resource-level permissions for these actions: "*" is the only valid resource.
WILDCARD_ONLY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@pytest.fixture(scope="module")
def template() -> dict:
    parsed, errors = decode_str(TEMPLATE_PATH.read_text())
    assert not errors, errors
    return parsed


def _resources(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == resource_type}


def _props(template: dict, logical_id: str) -> dict:
    return template["Resources"][logical_id].get("Properties", {})


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _resource_ref(resource) -> str:
    """A statement's resource as "LogicalId[/path]" or "*"."""
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Ref" in resource:
        return resource["Ref"]
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        target = resource["Fn::GetAtt"]
        logical_id, attribute = target if isinstance(target, list) else target.split(".", 1)
        assert attribute == "Arn", resource
        return logical_id
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        match = re.fullmatch(r"\$\{(\w+)\.Arn\}(/.*)", resource["Fn::Sub"])
        assert match, f"unexpected resource form: {resource}"
        return match.group(1) + match.group(2)
    raise AssertionError(f"resource is neither a reference nor '*': {resource!r}")


def _role_statements(template: dict, function: str) -> list[dict]:
    role_ref = _props(template, function)["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    role = _props(template, role_id)
    assert "ManagedPolicyArns" not in role, "managed policies bring Resource '*' statements"
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def _granted(statements: list[dict]) -> set[tuple[str, str]]:
    granted = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                granted.add((action, _resource_ref(resource)))
    return granted


def _globals_env(template: dict) -> dict:
    return template["Globals"]["Function"]["Environment"]["Variables"]


def _function_timeout(template: dict, function: str) -> int:
    return int(_props(template, function).get("Timeout", template["Globals"]["Function"].get("Timeout", 3)))


def _sqs_events(template: dict) -> dict[str, dict]:
    """queue logical id -> (function, event properties) for every SQS event source."""
    found = {}
    for function in FUNCTIONS:
        for event in _props(template, function).get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = _resource_ref(event["Properties"]["Queue"])
                found[queue] = {"function": function, **event["Properties"]}
    return found


# ---------------------------------------------------------------- IAM


@pytest.mark.parametrize("function", FUNCTIONS + PUSH_FUNCTIONS)
def test_each_function_role_grants_exactly_the_listed_permissions(template, function):
    # Given the function's own role
    statements = _role_statements(template, function)

    # When its statements are expanded to (action, resource) pairs
    granted = _granted(statements)

    # Then they are exactly what the function needs: nothing missing, nothing extra
    expected = EXPECTED_PERMISSIONS[function]
    assert granted - expected == set(), "granted but not needed"
    assert expected - granted == set(), "needed but not granted"


@pytest.mark.parametrize("function", FUNCTIONS + PUSH_FUNCTIONS)
def test_a_wildcard_resource_appears_only_where_aws_allows_nothing_else(template, function):
    for statement in _role_statements(template, function):
        if "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= WILDCARD_ONLY_ACTIONS, statement


@pytest.mark.parametrize("function", FUNCTIONS + PUSH_FUNCTIONS)
def test_functions_use_their_own_role_and_stay_out_of_a_vpc(template, function):
    props = _props(template, function)
    assert "Policies" not in props  # SAM would otherwise generate a role with managed policies
    assert "VpcConfig" not in props and "VpcConfig" not in template["Globals"]["Function"]
    role_id = props["Role"]["Fn::GetAtt"][0]
    trust = _props(template, role_id)["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    # logs go to a log group the role can name
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert _resources(template, "AWS::Logs::LogGroup")[log_group]["Properties"]["RetentionInDays"] > 0


# ---------------------------------------------------------------- storage


@pytest.mark.parametrize("bucket", ["InboxBucket", "OutputBucket"])
def test_buckets_block_public_access_encrypt_and_refuse_plain_http(template, bucket):
    props = _props(template, bucket)
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"]["Status"] == "Enabled"

    policies = [
        p["Properties"]["PolicyDocument"]
        for p in _resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    assert len(policies) == 1
    denials = [
        s
        for s in policies[0]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denials) == 1
    assert denials[0]["Principal"] == "*" and denials[0]["Action"] == "s3:*"
    assert {_resource_ref(r) for r in denials[0]["Resource"]} == {bucket, f"{bucket}/*"}


def test_only_new_and_removed_objects_under_inbox_reach_the_intake_queue(template):
    inbox = template["Resources"]["InboxBucket"]
    queue_configs = inbox["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    # drops, and deletes (a delete marker in the versioned inbox, or a version's delete): cancels
    assert [config["Event"] for config in queue_configs] == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    for config in queue_configs:
        assert _resource_ref(config["Queue"]) == "IntakeQueue"
        assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "inbox/"}]
    # S3 checks the destination when the bucket is created: the queue policy must exist first
    assert "IntakeQueuePolicy" in _as_list(inbox["DependsOn"])


def test_the_intake_queue_admits_only_this_stacks_inbox_bucket(template):
    bucket_name = _props(template, "InboxBucket")["BucketName"]["Fn::Sub"]
    policy = _props(template, "IntakeQueuePolicy")
    assert policy["Queues"] == [{"Ref": "IntakeQueue"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    source_arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source_arn == "arn:${AWS::Partition}:s3:::" + bucket_name
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_jobs_table_has_the_due_index_and_is_protected(template):
    props = _props(template, "JobsTable")
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    attribute_types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attribute_types == {"pk": "S", "due_kind": "S", "due_at": "S"}
    [index] = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "due-index"
    assert index["KeySchema"] == [
        {"AttributeName": "due_kind", "KeyType": "HASH"},
        {"AttributeName": "due_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# ---------------------------------------------------------------- queues


@pytest.mark.parametrize(
    ("queue", "dead_letter_queue"),
    [
        ("IntakeQueue", "IntakeDeadLetterQueue"),
        ("CompletionQueue", "CompletionDeadLetterQueue"),
        ("StitchQueue", "StitchDeadLetterQueue"),
    ],
)
def test_queues_park_poison_messages_and_outlast_their_consumer(template, queue, dead_letter_queue):
    props = _props(template, queue)
    redrive = props["RedrivePolicy"]
    assert _resource_ref(redrive["deadLetterTargetArn"]) == dead_letter_queue
    assert int(redrive["maxReceiveCount"]) == 5

    consumer = _sqs_events(template)[queue]
    window = int(consumer.get("MaximumBatchingWindowInSeconds", 0))
    assert int(props["VisibilityTimeout"]) >= 6 * _function_timeout(template, consumer["function"]) + window

    dlq = _props(template, dead_letter_queue)
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 24 * 3600
    for encrypted in (props, dlq):
        assert encrypted["SqsManagedSseEnabled"] is True


def test_sqs_event_sources_report_partial_batch_failures(template):
    events = _sqs_events(template)
    assert set(events) == {"IntakeQueue", "CompletionQueue", "StitchQueue"}
    for event in events.values():
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    intake = events["IntakeQueue"]
    assert intake["function"] == "SubmitFunction"
    assert (intake["BatchSize"], intake["MaximumBatchingWindowInSeconds"]) == (10, 1)
    assert intake["ScalingConfig"]["MaximumConcurrency"] == 2

    completion = events["CompletionQueue"]
    assert completion["function"] == "CompletionFunction"
    assert completion["BatchSize"] == 1

    # one film per invocation: a stitch takes minutes, a batch would share one timeout
    stitch = events["StitchQueue"]
    assert stitch["function"] == "StitchFunction"
    assert stitch["BatchSize"] == 1


def test_function_timeouts_and_memory(template):
    assert _function_timeout(template, "SubmitFunction") == 60
    assert _function_timeout(template, "PollerFunction") == 75
    assert _function_timeout(template, "CompletionFunction") == 300
    # the completion decodes the stored video for its pictures (PyAV): memory and CPU for a 1080P clip
    assert _props(template, "CompletionFunction")["MemorySize"] == 1024
    # the stitch (media/README.md): Lambda's longest timeout, the CPU of 3008 MB, /tmp for clips and film
    stitch = _props(template, "StitchFunction")
    assert _function_timeout(template, "StitchFunction") == 900
    assert stitch["MemorySize"] == 3008
    assert stitch["EphemeralStorage"] == {"Size": 2048}


def test_the_poller_runs_every_minute_without_retrying_missed_ticks(template):
    props = _props(template, "PollerFunction")
    [event] = props["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(1 minute)"
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert "ReservedConcurrentExecutions" not in props


# ---------------------------------------------------------------- environment and code


def test_every_variable_the_settings_require_is_set_for_all_functions(template):
    env = _globals_env(template)
    missing = [name for name in _REQUIRED.values() if name not in env]
    assert missing == []
    for function in FUNCTIONS:  # no function overrides the shared environment
        assert "Environment" not in _props(template, function)


def _resolve_with_defaults(template: dict, value) -> str:
    """A deploy-time value as the functions would see it with default parameters."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in template["Parameters"]:
            return str(template["Parameters"][name].get("Default", ""))
        return f"value-of-{name}"
    return str(value)


def test_the_default_parameters_make_valid_settings(template):
    # Given the Globals environment with every parameter at its default
    env = {name: _resolve_with_defaults(template, value) for name, value in _globals_env(template).items()}

    # When the code loads its settings from it
    settings = load_settings(env)

    # Then the defaults are accepted and mean what the parameters say: wan2.7-i2v at its own 1080P
    assert settings.provider_base_url == REGION_BASE_URLS["cn-beijing"]
    assert env["DEFAULT_RESOLUTION"] == ""  # empty: the default model's own
    assert (settings.default_model, settings.default_resolution) == ("wan2.7-i2v", "1080P")
    assert settings.prompt_extend is True and settings.watermark is False
    assert settings.provider_concurrency == 0 and settings.settle_seconds == 5
    assert env["POWERTOOLS_SERVICE_NAME"] == "inbetween"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Inbetween"
    # and every model the parameter offers, with the default (empty) resolution, runs at its own
    for model in template["Parameters"]["DefaultModel"]["AllowedValues"]:
        chosen = load_settings(dict(env, DEFAULT_MODEL=model))
        assert (chosen.default_model, chosen.default_resolution) == (model, MODELS[model].default_resolution)


def test_parameter_choices_agree_with_the_catalogue(template):
    params = template["Parameters"]
    assert set(params["ProviderRegion"]["AllowedValues"]) <= set(REGION_BASE_URLS)
    assert all(model_spec(model) for model in params["DefaultModel"]["AllowedValues"])
    # a model that lacks an offered resolution is guarded by a deploy-time rule ("" is every model's own)
    resolutions = set(params["DefaultResolution"]["AllowedValues"]) - {""}
    guarded = {
        rule["RuleCondition"]["Fn::Equals"][1]
        for rule in template.get("Rules", {}).values()
        if rule["RuleCondition"]["Fn::Equals"][0] == {"Ref": "DefaultModel"}
    }
    limited = {name for name, spec in MODELS.items() if not resolutions <= set(spec.resolutions)}
    assert limited <= guarded


def _holds(condition: dict, parameters: dict[str, str]) -> bool:
    """A rule's condition or assertion (Fn::Equals, Or, And, Not over parameter Refs) for these values."""
    [(function, args)] = condition.items()
    if function == "Fn::Equals":
        left, right = (parameters[arg["Ref"]] if isinstance(arg, dict) else str(arg) for arg in args)
        return left == right
    if function == "Fn::Not":
        return not _holds(args[0], parameters)
    if function in ("Fn::Or", "Fn::And"):
        results = [_holds(arg, parameters) for arg in args]
        return any(results) if function == "Fn::Or" else all(results)
    raise AssertionError(f"{function} in a rule: teach _holds about it")


def test_the_deploy_rules_allow_exactly_the_model_and_resolution_pairs_the_settings_accept(template):
    # Given every DefaultModel x DefaultResolution choice the parameters offer, the rest at their defaults
    params = template["Parameters"]
    defaults = {name: str(param.get("Default", "")) for name, param in params.items()}
    env = {name: _resolve_with_defaults(template, value) for name, value in _globals_env(template).items()}
    for model in params["DefaultModel"]["AllowedValues"]:
        for resolution in params["DefaultResolution"]["AllowedValues"]:
            values = dict(defaults, DefaultModel=model, DefaultResolution=resolution)
            # When CloudFormation checks the rules, and the code loads its settings
            allowed = all(
                _holds(assertion["Assert"], values)
                for rule in template.get("Rules", {}).values()
                if _holds(rule["RuleCondition"], values)
                for assertion in rule["Assertions"]
            )
            try:
                settings = load_settings(dict(env, DEFAULT_MODEL=model, DEFAULT_RESOLUTION=resolution))
            except ConfigError:
                settings = None
            # Then a deploy the rules let through starts, one they refuse would not have, and an empty
            # resolution is the model's own
            assert allowed == (settings is not None), (model, resolution)
            if settings is not None:
                assert settings.default_resolution == (resolution or MODELS[model].default_resolution)


def test_functions_share_the_layer_and_the_runtime(template):
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "InbetweenLayer"}]
    layer = template["Resources"]["InbetweenLayer"]
    assert layer["Properties"]["ContentUri"] == "shared/"
    # built by shared/Makefile (sam build runs its target): the runtime's wheels for the functions' arch
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    recipe = (Path(__file__).parents[2] / "shared" / "Makefile").read_text()
    assert "build-InbetweenLayer:" in recipe
    assert "--python-version 3.12" in recipe and "_aarch64" in recipe
    for function in FUNCTIONS:
        props = _props(template, function)
        name = function.removesuffix("Function").lower()
        assert (props["CodeUri"], props["Handler"]) == (f"functions/{name}/", "app.lambda_handler")


def test_only_the_stitch_and_completion_functions_get_the_media_layer(template):
    # Given the media layer: PyAV's inbetween_media, built by SAM's python3.12 builder for arm64
    layer = template["Resources"]["MediaLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "media/"
    assert (layer["Metadata"]["BuildMethod"], layer["Metadata"]["BuildArchitecture"]) == (
        "python3.12",
        "arm64",
    )
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    # Then the stitch function (the film) and the completion function (a clip's pictures) add it to the
    # Globals' shared layer (SAM appends a function's Layers to the Globals ones), and no other has it
    function_globals = template["Globals"]["Function"]
    with_media = {"StitchFunction", "CompletionFunction"}
    for function in FUNCTIONS + PUSH_FUNCTIONS:
        layers = [*function_globals["Layers"], *_props(template, function).get("Layers", [])]
        expected = ["InbetweenLayer", "MediaLayer"] if function in with_media else ["InbetweenLayer"]
        assert [layer["Ref"] for layer in layers] == expected, function


def test_every_function_can_hand_a_film_to_the_stitch(template):
    env = _globals_env(template)
    assert env["STITCH_QUEUE_URL"] == {"Ref": "StitchQueue"}
    resolved = {name: _resolve_with_defaults(template, value) for name, value in env.items()}
    assert load_settings(resolved).stitch_queue_url == "value-of-StitchQueue"


def test_the_media_layer_requirements_are_pinned_to_a_locked_version():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked: dict[str, set[str]] = {}
    for package in lock["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    lines = (ROOT / "media" / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert set(pins) == {"av"}  # Pillow comes with the shared layer
    assert all(version in locked.get(name, set()) for name, version in pins.items()), pins


def test_the_layer_requirements_are_pinned_to_the_lock_file():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {package["name"]: package["version"] for package in lock["package"]}
    lines = (ROOT / "shared" / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert {"httpx", "aws-lambda-powertools", "pillow"} <= set(pins)
    assert {name: locked.get(name) for name in pins} == pins


def test_the_webhook_signing_secret_is_32_alphanumeric_characters(template):
    generate = _props(template, "WebhookSigningSecret")["GenerateSecretString"]
    assert generate == {"PasswordLength": 32, "ExcludePunctuation": True}
    # the API key is issued by DashScope: the secret starts empty and says how to fill it
    api_key = _props(template, "DashScopeApiKeySecret")
    assert "GenerateSecretString" not in api_key and "SecretString" not in api_key
    assert "put-secret-value" in api_key["Description"]["Fn::Sub"]


# ---------------------------------------------------------------- alarms and outputs


@pytest.mark.parametrize(
    "dead_letter_queue", ["IntakeDeadLetterQueue", "CompletionDeadLetterQueue", "StitchDeadLetterQueue"]
)
def test_a_message_in_a_dead_letter_queue_raises_an_alarm(template, dead_letter_queue):
    alarms = [
        a["Properties"]
        for a in _resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letter_queue, "QueueName"]}}]
    ]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (300, 1)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_jobs_needing_attention_raise_an_alarm(template):
    alarm = _props(template, "JobsNeedingAttentionAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Inbetween", "JobsNeedingAttention")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "inbetween"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_jobs_topic_is_encrypted_and_the_alarm_topic_holds_no_key_of_its_own(template):
    # the notification topic carries jobs' data: encrypted. The alarm topic carries alarm names only, and
    # CloudWatch cannot publish under the AWS-managed key: a key of our own would be half the idle cost
    assert _props(template, "NotifyTopic")["KmsMasterKeyId"] == "alias/aws/sns"
    assert "KmsMasterKeyId" not in _props(template, "AlarmTopic")
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    skips = template["Resources"]["AlarmTopic"]["Metadata"]["checkov"]["skip"]
    assert [s["id"] for s in skips] == ["CKV_AWS_26"] and skips[0]["comment"]
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_the_poller_alone_is_not_traced(template):
    # it runs every minute, idle or not; the functions doing a job's work keep the global Active tracing
    assert _props(template, "PollerFunction")["Tracing"] == "PassThrough"
    traced = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function" and "Tracing" not in r["Properties"]
    ]
    assert "SubmitFunction" in traced and "CompletionFunction" in traced


def test_outputs_name_everything_an_operator_and_the_local_stack_need(template):
    assert set(template["Outputs"]) >= {
        "InboxBucketName",
        "OutputBucketName",
        "NotifyTopicArn",
        "JobsTableName",
        "IntakeQueueUrl",
        "CompletionQueueUrl",
        "StitchQueueUrl",
        "IntakeDeadLetterQueueUrl",
        "CompletionDeadLetterQueueUrl",
        "StitchDeadLetterQueueUrl",
        "DashScopeApiKeySecretArn",
        "WebhookSigningSecretArn",
        "AlarmTopicArn",
    }


# ---------------------------------------------------------------- provider push


_PUSH_RESOURCES = (
    "PushSecret",
    "ProviderEventsFunction",
    "ProviderEventsFunctionRole",
    "ProviderEventsLogGroup",
    "ProviderEventsInvokePermission",
)


def test_push_is_off_by_default_and_everything_it_adds_depends_on_it(template):
    assert template["Parameters"]["PushEnabled"]["Default"] == "false"
    assert template["Conditions"]["PushOn"] == {"Fn::Equals": [{"Ref": "PushEnabled"}, "true"]}
    for logical_id in _PUSH_RESOURCES:
        assert template["Resources"][logical_id]["Condition"] == "PushOn", logical_id
    for output in ("ProviderEventsUrl", "PushSecretArn"):
        assert template["Outputs"][output]["Condition"] == "PushOn"
    # every function knows whether push is on (the poller changes its checks)
    assert _globals_env(template)["PUSH_ENABLED"] == {"Ref": "PushEnabled"}


def test_the_provider_events_function_is_reached_only_through_its_public_url(template):
    props = _props(template, "ProviderEventsFunction")
    assert (props["CodeUri"], props["Handler"]) == ("functions/provider_events/", "app.lambda_handler")
    assert props["FunctionUrlConfig"] == {"AuthType": "NONE"}  # EventBridge cannot sign AWS requests
    assert "Events" not in props
    assert props["Environment"]["Variables"] == {"PUSH_SECRET_NAME": {"Ref": "PushSecret"}}
    permission = _props(template, "ProviderEventsInvokePermission")
    assert permission["InvokedViaFunctionUrl"] is True
    assert permission["FunctionName"] == {"Ref": "ProviderEventsFunction"}
    url = template["Outputs"]["ProviderEventsUrl"]["Value"]
    assert url == {"Fn::GetAtt": ["ProviderEventsFunctionUrl", "FunctionUrl"]}
    skips = {s["id"] for s in template["Resources"]["ProviderEventsFunction"]["Metadata"]["checkov"]["skip"]}
    assert "CKV_AWS_258" in skips  # the public URL is a decision, explained there


def test_the_push_secret_is_generated(template):
    generate = _props(template, "PushSecret")["GenerateSecretString"]
    assert generate["PasswordLength"] >= 32 and generate["ExcludePunctuation"] is True


def test_the_default_parameters_leave_push_off_in_the_settings(template):
    env = {name: _resolve_with_defaults(template, value) for name, value in _globals_env(template).items()}
    assert load_settings(env).push_enabled is False
    assert load_settings(dict(env, PUSH_ENABLED="true")).push_enabled is True


def test_cfn_lint_accepts_the_template():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
