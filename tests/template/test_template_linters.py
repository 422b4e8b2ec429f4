"""sam validate --lint, cfn-lint and checkov over template.yaml, offline, from the tools venvs."""

import json
from pathlib import Path
from typing import Any

import yaml

from tests.template.conftest import CHECKOV_VENV, TEMPLATE, TOOLS_VENV, run, tool

CHECKOV_SKIPS = Path(__file__).with_name("checkov-skips.yaml")


def test_sam_validate_lint_accepts_the_template() -> None:
    result = run([tool(TOOLS_VENV, "sam"), "validate", "--lint", "--template-file", TEMPLATE])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_reports_nothing() -> None:
    result = run([tool(TOOLS_VENV, "cfn-lint"), "--format", "parseable", TEMPLATE])

    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def checkov_failures(report: Any) -> dict[str, set[str]]:
    """check id -> resources that failed it, from checkov's JSON report (one framework or several)."""
    failures: dict[str, set[str]] = {}
    for framework in report if isinstance(report, list) else [report]:
        for check in framework.get("results", {}).get("failed_checks", []):
            failures.setdefault(check["check_id"], set()).add(check["resource"])
    return failures


def test_checkov_finds_nothing_outside_the_documented_skips(translated: dict[str, Any], tmp_path: Path) -> None:
    skips: dict[str, str] = yaml.safe_load(CHECKOV_SKIPS.read_text(encoding="utf-8"))
    stack = tmp_path / "template.json"
    stack.write_text(json.dumps(translated), encoding="utf-8")

    command: list[str | Path] = [tool(CHECKOV_VENV, "checkov"), "--file", stack, "--framework", "cloudformation"]
    options = ["--skip-download", "--output", "json", "--quiet"]

    result = run([*command, *options], cwd=tmp_path)  # tmp_path: no stray .checkov.yaml is read
    assert result.stdout.lstrip().startswith(("{", "[")), result.stdout[-2000:] + result.stderr[-2000:]
    failures = checkov_failures(json.loads(result.stdout))

    assert all(reason.strip() for reason in skips.values())
    assert {check: failures[check] for check in set(failures) - set(skips)} == {}
    assert set(skips) - set(failures) == set(), "these skips no longer fail: remove them"
