"""A moto server that enforces IAM, in a process of its own, for tests run under a real role.

Why a process of its own: moto's switch (``INITIAL_NO_AUTH_ACTION_COUNT``) is global to the
process that serves, so turning it on in the test session's embedded stack would make every
other test authenticate. Here a child process serves moto over HTTP; the parent creates an
admin user while authentication is still off, then turns it on (``/moto-api/reset-auth``):
from then on every request is signed by an IAM identity and judged against its policies.

What moto's enforcement covers, as read in its code (``moto/iam/access_control.py``,
``moto/core/responses.py``): identity policies of users and assumed roles, Allow/Deny with
action and resource wildcards. What it does not:

- only S3, SQS, IAM and STS requests are judged by their resource ARN; every other service
  (SES, KMS, Secrets Manager, DynamoDB, ...) against resource ``*``, so an ARN-scoped statement
  for them never matches;
- a multi-object delete (DeleteObjects) is judged as ``s3:DeleteObject`` on the bucket's ARN,
  where AWS judges each key;
- a condition whose key the request does not carry is treated as met (so ``s3:prefix`` and
  ``ses:FromAddress`` are never enforced);
- a trust policy statement naming another principal is read as a deny (and a ``Service``
  principal trips it), and ``arn:aws:iam::<account>:root`` does not stand for the account.

The call ledger (:mod:`processor.devkit.iam_ledger`) judges all of these by AWS's rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from types import TracebackType
from typing import Any

import boto3

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class EnforcedStack:
    """``with EnforcedStack() as stack:`` a moto server enforcing IAM; ``stack.admin`` may do anything."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.endpoint_url = ""
        self.admin: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> EnforcedStack:
        self._proc = subprocess.Popen([sys.executable, "-m", "processor.devkit.iam_stack"],
                                      stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.endpoint_url = self._proc.stdout.readline().strip()
        if not self.endpoint_url.startswith("http://"):
            raise RuntimeError(f"the enforcing moto server did not start: {self.endpoint_url!r}")
        iam = self._client("iam", {"AWS_ACCESS_KEY_ID": "bootstrap", "AWS_SECRET_ACCESS_KEY": "bootstrap"})
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="everything", PolicyDocument=json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self.admin = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - our own local server
            resp.read()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def _client(self, service: str, credentials: dict[str, str]) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=credentials.get("AWS_SESSION_TOKEN"))

    def client(self, service: str, credentials: dict[str, str] | None = None) -> Any:
        """A boto3 client signed as ``credentials`` (default: the admin)."""
        return self._client(service, credentials or self.admin)

    def assume(self, role_arn: str, session: str = "worker") -> dict[str, str]:
        """Temporary credentials of ``role_arn``, as ECS would hand the task."""
        creds = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"]}


def main() -> None:
    """Serve moto on a free port, print its URL, run until stdin closes or SIGTERM."""
    from processor.devkit.local_stack import _MotoServer

    server = _MotoServer("127.0.0.1")
    print(f"http://127.0.0.1:{server.port}", flush=True)
    try:
        while sys.stdin.readline():
            time.sleep(0.1)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
