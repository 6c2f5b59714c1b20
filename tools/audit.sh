#!/usr/bin/env bash
# Static audit of template.yaml: cfn-lint, then checkov, both offline.
#
# checkov lives in its own virtualenv (.tools/checkov-venv) because it pins a boto3 older than the one moto
# needs. The first run creates it (the only network use: the package index, through pip); later runs reuse
# it. checkov is run with --skip-download and CKV_SKIP_PACKAGE_UPDATE_CHECK=true, so it does not contact
# its vendor's API or PyPI.
#
# Every checkov finding must be fixed in the template or skipped in the resource's Metadata with a reason:
#   Metadata: {checkov: {skip: [{id: CKV_AWS_xx, comment: why}]}}
# The script fails on any failed check and on any skip without a comment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TEMPLATE="${TEMPLATE:-template.yaml}"
CHECKOV_VERSION="3.3.30"
CHECKOV_VENV=".tools/checkov-venv"
CHECKOV_STAMP="$CHECKOV_VENV/.checkov-$CHECKOV_VERSION"
PYTHON="${PYTHON:-python3}"

echo "== cfn-lint $TEMPLATE"
if [[ ! -x .venv/bin/cfn-lint ]]; then
    echo "audit: .venv/bin/cfn-lint is missing; run 'make install' first" >&2
    exit 2
fi
.venv/bin/cfn-lint "$TEMPLATE"

if [[ ! -f "$CHECKOV_STAMP" ]]; then
    echo "== installing checkov $CHECKOV_VERSION into $CHECKOV_VENV (once)"
    rm -rf "$CHECKOV_VENV"
    "$PYTHON" -m venv "$CHECKOV_VENV"
    install_log="$(mktemp)"
    if ! "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
        >"$install_log" 2>&1; then
        cat "$install_log" >&2
        rm -f "$install_log"
        echo "audit: installing checkov failed" >&2
        exit 2
    fi
    rm -f "$install_log"
    touch "$CHECKOV_STAMP"
fi

echo "== checkov $CHECKOV_VERSION $TEMPLATE"
report_dir="$(mktemp -d)"
trap 'rm -rf "$report_dir"' EXIT
set +e
CKV_SKIP_PACKAGE_UPDATE_CHECK=true "$CHECKOV_VENV/bin/checkov" \
    --file "$TEMPLATE" \
    --framework cloudformation \
    --skip-download \
    --quiet --compact \
    --output cli --output json --output-file-path "console,$report_dir/checkov.json"
checkov_status=$?
set -e

# checkov exits 1 on failed checks; anything else non-zero is a crash.
if [[ $checkov_status -ne 0 && $checkov_status -ne 1 ]]; then
    echo "audit: checkov crashed (exit $checkov_status)" >&2
    exit "$checkov_status"
fi

"$CHECKOV_VENV/bin/python" - "$report_dir/checkov.json" "$TEMPLATE" <<'PY'
import json
import sys

import yaml  # a checkov dependency


class TemplateLoader(yaml.SafeLoader):
    pass


# !Ref, !Sub, !GetAtt...: only the Metadata matters here, so any tagged node is read as plain data.
TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)

report_path, template_path = sys.argv[1], sys.argv[2]
with open(report_path) as handle:
    report = json.load(handle)
reports = report if isinstance(report, list) else [report]
summary = {key: sum(r.get("summary", {}).get(key, 0) for r in reports) for key in ("passed", "failed", "skipped")}
failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]

with open(template_path) as handle:
    template = yaml.load(handle, Loader=TemplateLoader)
unexplained = []
for name, resource in (template.get("Resources") or {}).items():
    metadata = (resource or {}).get("Metadata") or {}
    for skip in (metadata.get("checkov") or {}).get("skip") or []:
        if not str(skip.get("comment") or "").strip():
            unexplained.append(f"{skip.get('id')} on {name}")

for item in unexplained:
    print(f"audit: checkov skip {item} has no comment saying why", file=sys.stderr)
for check in failed:
    print(f"audit: {check['check_id']} failed on {check['resource']}: {check['check_name']}", file=sys.stderr)
print(
    f"audit: checkov passed {summary['passed']}, failed {summary['failed']}, "
    f"skipped {summary['skipped']} ({len(unexplained)} without a reason)"
)
if summary["passed"] == 0:
    print("audit: checkov scanned nothing; is the template path right?", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if summary["failed"] or failed or unexplained else 0)
PY
echo "== audit passed"
