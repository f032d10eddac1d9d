"""The Lambda zip (scripts/build-frontdoor-zip.sh) is self-contained and small: built for this
Python, unpacked, and run with nothing but the standard library and the zip on the path, its
handler serves real requests against the embedded stack, and it never loads the ML stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from processor.devkit.local_stack import LocalStack
from processor.settings import Settings
from tests.integration.harness import REPO_ROOT

pytestmark = pytest.mark.slow  # pip fetches the wheels for the zip (~30-60 s)

RUN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import frontdoor.lambda_handler as h
def event(method, path, body=""):
    return {"version": "2.0", "rawPath": path, "rawQueryString": "", "body": body, "isBase64Encoded": False,
            "headers": {"content-type": "application/json", "host": "fd.example"},
            "requestContext": {"domainName": "fd.example", "http": {"method": method, "sourceIp": "203.0.113.7"}}}
photos = [{"name": f"p{i}.jpg", "type": "image/jpeg", "size": 100} for i in range(10)]
out = {"health": h.handler(event("GET", "/healthz"))["statusCode"],
       "page": h.handler(event("GET", "/"))["statusCode"],
       "create": h.handler(event("POST", "/api/jobs", json.dumps({"email": "a@example.com", "name": "A",
                                                                   "photos": photos})))}
import frontdoor.key_rotation as rotation  # the rotation function's handler, from the same zip
out["rotation"] = callable(rotation.handler)
out["heavy"] = sorted(m for m in ("torch", "diffusers", "handlers", "aioboto3", "processor.aws", "processor.worker")
                      if m in sys.modules)
print(json.dumps(out))
"""


def test_the_zip_runs_the_front_door_alone(local_stack: LocalStack, aws_settings: Settings, tmp_path: Path) -> None:
    zip_path = tmp_path / "frontdoor.zip"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = subprocess.run([str(REPO_ROOT / "scripts" / "build-frontdoor-zip.sh"), str(zip_path)], cwd=REPO_ROOT,
                           env={**os.environ, "LAMBDA_PYTHON": version, "PYTHON": sys.executable},
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "pkg")
    assert {"frontdoor/lambda_handler.py", "frontdoor/key_rotation.py", "frontdoor/templates/upload.html",
            "frontdoor/static/upload.js",
            "processor/links.py", "processor/job/state.py", "boto3/__init__.py"} <= names
    assert not any(n.startswith(("handlers/", "torch/", "processor/aws/", "processor/devkit/", "tests/"))
                   or n in ("processor/stages.py", "processor/worker.py", "processor/notify.py") for n in names)
    assert zip_path.stat().st_size < 30 * 2**20

    creds = local_stack.frontdoor_credentials
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"], "AWS_DEFAULT_REGION": aws_settings.aws_region}
    for name in ("input_bucket", "output_bucket", "aws_region", "aws_endpoint_url", "link_secret_id",
                 "frontdoor_ratelimit_table"):
        env[f"HEADSHOTS_{name.upper()}"] = str(getattr(aws_settings, name))
    ran = subprocess.run([sys.executable, "-I", "-S", "-c", RUN, str(tmp_path / "pkg")], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-4000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["health"] == 200 and out["page"] == 200 and out["heavy"] == [] and out["rotation"]
    created = out["create"]
    assert created["statusCode"] == 201, created
    job = json.loads(created["body"])
    assert job["verify_url"].startswith("https://fd.example/api/jobs/")  # no configured URL: the function URL's host
    assert any(f"X-Headshots-Proof: {job['job_id']}" in m.raw for m in local_stack.ses_sent_messages())  # via SES
