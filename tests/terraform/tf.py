"""Terraform against the embedded moto servers, offline: the CLI, its config, a provider for moto."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("s3", "sqs", "kms", "ses", "sesv2", "sns", "sts", "iam", "cloudwatch", "dynamodb", "secretsmanager",
            "logs")


def provider_override(endpoint: str, region: str) -> str:
    """A provider block for moto: its endpoints, no account lookups, path-style S3."""
    endpoints = "\n".join(f'    {name} = "{endpoint}"' for name in SERVICES)
    return f'''provider "aws" {{
  region                      = "{region}"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
'''


def settings_from_outputs(outputs: dict[str, Any]) -> dict[str, str]:
    """Worker settings from `terraform output -json`: each HEADSHOTS_X output is setting x."""
    return {name.removeprefix("HEADSHOTS_").lower(): str(out["value"])
            for name, out in outputs.items() if name.startswith("HEADSHOTS_")}


class Terraform:
    """The terraform CLI in one working folder, offline (provider from the local mirror)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env

    def run(self, *args: str, timeout: float = 400) -> str:
        proc = subprocess.run(["terraform", *args], cwd=self.workdir, env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"terraform {args[0]} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc.stdout


def cli_config() -> str:
    out = subprocess.run([str(REPO / "scripts" / "terraform-cli-config.sh")], text=True,
                         capture_output=True, check=True)
    return out.stdout.strip()


def apply_module(module: Path, workdir: Path, endpoint: str, region: str, credentials: dict[str, str],
                 tfvars: dict[str, Any], targets: tuple[str, ...] = ()) -> tuple[Terraform, dict[str, Any]]:
    """Copy ``module`` (with its committed lock) to ``workdir``, point it at ``endpoint``, apply
    (only ``targets`` and what they need, when given)."""
    for tf_file in [*module.glob("*.tf"), module / ".terraform.lock.hcl"]:
        shutil.copy(tf_file, workdir / tf_file.name)
    (workdir / "zz_moto_provider_override.tf").write_text(provider_override(endpoint, region))
    (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    env = {**os.environ, "TF_CLI_CONFIG_FILE": cli_config(), "TF_IN_AUTOMATION": "1", "AWS_REGION": region,
           **credentials}
    env.pop("AWS_SESSION_TOKEN", None) if "AWS_SESSION_TOKEN" not in credentials else None
    tf = Terraform(workdir, env)
    tf.run("init", "-input=false", "-no-color")
    tf.run("apply", "-auto-approve", "-input=false", "-no-color", *(f"-target={t}" for t in targets))
    return tf, json.loads(tf.run("output", "-json", "-no-color"))
