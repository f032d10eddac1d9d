"""The front-door module speaks the code's language: every HEADSHOTS_* name it puts in the
Lambda's environment or outputs is a real setting, the root re-exports its worker settings, the
handler it names exists, and the IAM grants it lists are the ones the issue names. Pure file
reading; `terraform test` pins the rendered values."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from processor.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "terraform" / "modules" / "frontdoor"


def test_environment_and_outputs_name_real_settings_and_the_root_re_exports_them() -> None:
    main = (MODULE / "main.tf").read_text()
    env = set(re.findall(r"^\s*(HEADSHOTS_\w+)\s*=", main, re.MULTILINE))
    env |= set(re.findall(r"\{\s*(HEADSHOTS_\w+)\s*=", main))
    outputs = set(re.findall(r'^output\s+"(HEADSHOTS_\w+)"', (MODULE / "outputs.tf").read_text(), re.MULTILINE))
    assert {"HEADSHOTS_LINK_SECRET_ID", "HEADSHOTS_FRONTDOOR_RATELIMIT_TABLE", "HEADSHOTS_FRONTDOOR_URL"} <= env
    assert outputs == {"HEADSHOTS_FRONTDOOR_URL", "HEADSHOTS_LINK_SECRET_ID", "HEADSHOTS_LINK_TTL_S"}
    unknown = {n for n in env | outputs if n.removeprefix("HEADSHOTS_").lower() not in Settings.model_fields}
    assert not unknown, sorted(unknown)
    root = set(re.findall(r'^output\s+"(HEADSHOTS_\w+)"', (REPO / "terraform" / "outputs.tf").read_text(), re.MULTILINE))
    assert outputs <= root


def test_the_handlers_the_module_names_exist() -> None:
    for tf in ("main.tf", "rotation.tf"):
        handler = re.search(r'handler\s*=\s*"([\w.]+)"', (MODULE / tf).read_text()).group(1)
        module, _, name = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_the_listed_grants_are_the_issues_list() -> None:
    iam = (MODULE / "iam.tf").read_text()
    sids = re.findall(r'sid\s*=\s*"(\w+)"', iam)
    assert sids == ["ReadResultsAndStatus", "CountUploadsOfOneJob", "SignUploadPolicies", "UseServiceKey",
                    "WriteFeedback", "ReadLinkKey", "KeepRateLimitState", "SendCodeEmail", "WriteOwnLogs"]
    action_lists = re.findall(r"actions\s*=\s*\[([^\]]*)\]", iam.split("resource ")[0])
    actions = {a for listed in action_lists for a in re.findall(r'"([a-z0-9]+:\w+)"', listed)}
    assert actions == {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey",
                       "secretsmanager:GetSecretValue", "dynamodb:UpdateItem", "dynamodb:GetItem", "ses:SendRawEmail",
                       "logs:CreateLogStream", "logs:PutLogEvents"}
