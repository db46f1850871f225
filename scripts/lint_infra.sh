#!/usr/bin/env bash
# Lint the SAM template: cfn-lint (pinned with the SAM translator, in .venv) and checkov (in its own
# venv, .venv-checkov, so that its many pins never fight the project's). Every checkov finding must be
# fixed or suppressed in the template with a written reason; a parse error counts as a failure
# (checkov itself exits 0 on one).
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPLATE=${1:-infra/template.yaml}
.venv/bin/cfn-lint "$TEMPLATE"
.venv-checkov/bin/checkov -f "$TEMPLATE" --framework cloudformation --skip-download --quiet --compact -o json > .checkov.json || true
.venv/bin/python - "$TEMPLATE" <<'PY'
import json, sys
report = json.load(open(".checkov.json"))
reports = report if isinstance(report, list) else [report]
failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
summary = reports[0].get("summary", {})
for check in failed:
    print(f"checkov: {check['check_id']} {check['check_name']} ({check['resource']})")
if summary.get("parsing_errors") or failed or not summary.get("passed"):
    print(f"checkov failed on {sys.argv[1]}: {summary}")
    sys.exit(1)
print(f"checkov: {summary['passed']} passed, {summary['skipped']} suppressed with a reason, 0 failed")
PY
rm -f .checkov.json
