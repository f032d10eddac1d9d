"""The deployment files speak the worker's language: every HEADSHOTS_* name that Terraform
outputs or puts in the container, and every one the Dockerfile sets, is a real setting, and the
container's commands parse with the real CLI. Pure file reading; no terraform binary needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from processor.cli import build_parser
from processor.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
OUTPUT_NAME = re.compile(r'^output\s+"(HEADSHOTS_\w+)"', re.MULTILINE)
ENV_KEY = re.compile(r"^\s*(HEADSHOTS_\w+)\s*=", re.MULTILINE)


def setting_of(env_name: str) -> str:
    return env_name.removeprefix("HEADSHOTS_").lower()


def output_names(path: Path) -> set[str]:
    return set(OUTPUT_NAME.findall(path.read_text()))


def test_root_and_module_outputs_name_only_real_settings() -> None:
    root = output_names(TERRAFORM / "outputs.tf")
    module = output_names(TERRAFORM / "modules" / "storage_messaging" / "outputs.tf")
    assert {"HEADSHOTS_INPUT_BUCKET", "HEADSHOTS_OUTPUT_BUCKET", "HEADSHOTS_QUEUE_URL", "HEADSHOTS_DLQ_URL",
            "HEADSHOTS_AWS_REGION", "HEADSHOTS_EMAIL_BACKEND", "HEADSHOTS_EMAIL_SENDER"} <= module
    assert module <= root, "the root re-exports every setting the data path outputs"
    unknown = {n for n in root | module if setting_of(n) not in Settings.model_fields}
    assert not unknown, f"outputs that no setting reads: {sorted(unknown)}"


def test_container_environment_in_terraform_and_dockerfile_uses_real_settings() -> None:
    names = set(ENV_KEY.findall((TERRAFORM / "modules" / "compute" / "main.tf").read_text()))
    names |= set(ENV_KEY.findall((TERRAFORM / "modules" / "storage_messaging" / "outputs.tf").read_text()))
    names |= set(re.findall(r"\b(HEADSHOTS_\w+)=", (REPO / "Dockerfile").read_text()))
    assert {"HEADSHOTS_HEALTH_FILE", "HEADSHOTS_WORK_DIR", "HEADSHOTS_QUEUE_URL"} <= names
    unknown = {n for n in names if setting_of(n) not in Settings.model_fields}
    assert not unknown, f"environment names that no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("argv", [["worker"], ["worker", "--check-health"]])
def test_container_commands_parse_with_the_real_cli(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == "worker" and callable(args.handler)


def test_dockerfile_runs_the_worker_under_an_init_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "-s", "--", "headshots"\]$', text, re.MULTILINE)
    assert re.search(r'^CMD \["worker"\]$', text, re.MULTILINE)
    assert re.search(r'^\s+CMD \["headshots", "worker", "--check-health"\]$', text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] == "10001:10001"
