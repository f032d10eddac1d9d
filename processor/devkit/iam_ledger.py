"""The IAM call ledger: every AWS call a process made, as IAM sees it, checked against a policy.

Why: moto can enforce IAM, but it evaluates SES and KMS against resource ``*`` and lets a
condition pass when the request lacks its key (so ``s3:prefix`` and ``ses:FromAddress`` are
never enforced). The ledger records each call at the HTTP edge (the fault proxy, see
:class:`~processor.devkit.fault_proxy.FaultProxy` ``ledger``) as the action, the resource ARN
and the condition keys AWS would evaluate, and :func:`evaluate` decides it against the
identity policy Terraform renders, with AWS's rules for what moto skips.

Limits (what this evaluator does not do): identity policies only (no resource policies, SCPs,
permission boundaries or session policies); no policy variables (``${aws:username}``); the
condition operators are the String, Arn, Bool, Null and Numeric families with ``IfExists`` and
the ``ForAnyValue``/``ForAllValues`` set forms; global condition keys other than the ones the
request parsers add are treated as absent. S3 is parsed for path-style requests (what the
service uses against a local endpoint); calls that S3 makes on the caller's behalf (KMS for
SSE-KMS objects) are not seen here.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Call:
    """One IAM-authorized request: ``s3:GetObject`` on ``arn:aws:s3:::b/k`` with its condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def keys(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self.context:
            out.setdefault(k.lower(), []).append(v)
        return out


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statements: tuple[str, ...] = ()  # the Sids (or indexes) that allowed or denied it
    reason: str = ""


# --- requests -> calls (pure) --------------------------------------------------------------
def calls_from_request(service: str, method: str, url: str, headers: dict[str, str], body: bytes,
                       region: str, account: str) -> list[Call]:
    """The IAM calls one HTTP request makes (several for a multi-object delete)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    if service == "s3":
        return _s3_calls(method, unquote(parts.path), query, body)
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
    params: dict[str, Any]
    if target:
        action = target.rsplit(".", 1)[-1]
        params = json.loads(body or b"{}")
    else:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        params = {**query, **form}
        action = str(params.get("Action", ""))
    if service == "sqs":
        url_ = str(params.get("QueueUrl", ""))
        name = url_.rstrip("/").rsplit("/", 1)[-1] if url_ else str(params.get("QueueName", "*"))
        return [Call(f"sqs:{action}", f"arn:aws:sqs:{region}:{account}:{name}")]
    if service == "ses":
        source = str(params.get("Source", ""))
        address = re.sub(r".*<([^>]+)>.*", r"\1", source).strip()
        ctx = (("ses:FromAddress", address),) if address else ()
        identities = [f"arn:aws:ses:{region}:{account}:identity/{address}"] if address else ["*"]
        return [Call(f"ses:{action}", arn, ctx) for arn in identities]
    if service == "secretsmanager":
        return [Call(f"secretsmanager:{action}", str(params.get("SecretId", "*")))]
    if service == "dynamodb":
        return [Call(f"dynamodb:{action}", f"arn:aws:dynamodb:{region}:{account}:table/{params.get('TableName', '*')}")]
    if service == "ssm":
        name = str(params.get("Name", "*")).lstrip("/")
        return [Call(f"ssm:{action}", f"arn:aws:ssm:{region}:{account}:parameter/{name}")]
    return [Call(f"{service}:{action}", "*")]


def _s3_calls(method: str, path: str, query: dict[str, str], body: bytes) -> list[Call]:
    bucket, _, key = path.lstrip("/").partition("/")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not key:
        if method == "POST" and "delete" in query:
            keys = re.findall(rb"<Key>(.*?)</Key>", body)
            return [Call("s3:DeleteObject", f"{bucket_arn}/{_xml_unescape(k.decode())}") for k in keys]
        if method == "GET" and "uploads" in query:
            return [Call("s3:ListBucketMultipartUploads", bucket_arn)]  # s3:prefix is ListBucket's key only
        if method in ("GET", "HEAD") and not ({"location", "cors", "policy", "notification",
                                               "lifecycle", "versioning", "tagging", "acl"} & set(query)):
            return [Call("s3:ListBucket", bucket_arn, (("s3:prefix", query.get("prefix", "")),))]
        return [Call(f"s3:{method}Bucket?{'&'.join(sorted(query))}", bucket_arn)]
    object_arn = f"{bucket_arn}/{key}"
    action = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject",
              "DELETE": "s3:DeleteObject", "POST": "s3:PutObject"}.get(method, f"s3:{method}")
    if method == "DELETE" and "uploadId" in query:
        action = "s3:AbortMultipartUpload"
    elif method == "GET" and "uploadId" in query:
        action = "s3:ListMultipartUploadParts"
    if "tagging" in query:
        action = {"GET": "s3:GetObjectTagging", "PUT": "s3:PutObjectTagging"}.get(method, action)
    return [Call(action, object_arn)]


def _xml_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'") \
        .replace("&amp;", "&")


# --- evaluation (pure) -------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, case: bool) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _statement_matches(st: dict[str, Any], call: Call) -> bool:
    if "Action" in st:
        if not any(_glob(a, call.action, case=False) for a in _as_list(st["Action"])):
            return False
    elif "NotAction" in st and any(_glob(a, call.action, case=False) for a in _as_list(st["NotAction"])):
        return False
    if "Resource" in st:
        if not any(_glob(r, call.resource, case=True) for r in _as_list(st["Resource"])):
            return False
    elif "NotResource" in st and any(_glob(r, call.resource, case=True) for r in _as_list(st["NotResource"])):
        return False
    return all(_condition(op, key, _as_list(expected), call.keys())
               for op, block in (st.get("Condition") or {}).items() for key, expected in block.items())


_STRING = {"StringEquals": (False, False, True), "StringNotEquals": (True, False, True),
           "StringEqualsIgnoreCase": (False, False, False), "StringNotEqualsIgnoreCase": (True, False, False),
           "StringLike": (False, True, True), "StringNotLike": (True, True, True),
           "ArnEquals": (False, True, True), "ArnLike": (False, True, True),
           "ArnNotEquals": (True, True, True), "ArnNotLike": (True, True, True)}


def _condition(operator: str, key: str, expected: list[Any], context: dict[str, list[str]]) -> bool:
    """One condition operator over one key, with AWS's rule for a key the request lacks."""
    set_form, _, op = operator.partition(":") if ":" in operator else ("", "", operator)
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    values = context.get(key.lower())
    if op == "Null":
        want_null = str(expected[0]).lower() == "true"
        return (values is None) == want_null
    if values is None:
        # An absent key (moto lets any condition pass). AWS: IfExists matches; a set form reads
        # the absent key as the empty set, so ForAllValues is vacuously true and ForAnyValue
        # false, negated or not; a single-valued negated operator matches, any other does not.
        if if_exists or set_form == "ForAllValues":
            return True
        if set_form == "ForAnyValue":
            return False
        return op in ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike",
                      "StringNotEqualsIgnoreCase")
    if op in _STRING:
        negated, wildcard, case = _STRING[op]

        def one(v: str) -> bool:
            hit = any(_glob(str(e), v, case) if wildcard else (str(e) == v if case else str(e).lower() == v.lower())
                      for e in expected)
            return not hit if negated else hit
    elif op == "Bool":
        def one(v: str) -> bool:
            return str(v).lower() == str(expected[0]).lower()
    elif op.startswith("Numeric"):
        cmp = {"NumericEquals": float.__eq__, "NumericNotEquals": float.__ne__, "NumericLessThan": float.__lt__,
               "NumericLessThanEquals": float.__le__, "NumericGreaterThan": float.__gt__,
               "NumericGreaterThanEquals": float.__ge__}[op]

        def one(v: str) -> bool:
            return any(cmp(float(v), float(e)) for e in expected)
    else:
        raise ValueError(f"condition operator {operator} is beyond this evaluator (see its limits)")
    if set_form == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def evaluate(policy: dict[str, Any], call: Call) -> Decision:
    """An identity policy's decision on one call: an explicit Deny wins, else any Allow, else no."""
    allows, denies = [], []
    for i, st in enumerate(_as_list(policy.get("Statement", []))):
        if _statement_matches(st, call):
            (denies if st.get("Effect") == "Deny" else allows).append(str(st.get("Sid") or i))
    if denies:
        return Decision(False, tuple(denies), "explicitly denied")
    if allows:
        return Decision(True, tuple(allows))
    return Decision(False, (), "no statement allows it")


@dataclass
class LedgerReport:
    """The ledger held to a policy: calls it denies, and statements no call used."""

    calls: list[Call]
    denied: list[tuple[Call, str]] = field(default_factory=list)
    used: dict[str, int] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)


def check(policy: dict[str, Any], calls: Iterable[Call]) -> LedgerReport:
    unique = sorted(set(calls), key=lambda c: (c.action, c.resource, c.context))
    report = LedgerReport(unique)
    for call in unique:
        decision = evaluate(policy, call)
        if not decision.allowed:
            report.denied.append((call, decision.reason))
        for sid in decision.statements:
            report.used[sid] = report.used.get(sid, 0) + 1
    report.unused = [str(st.get("Sid") or i) for i, st in enumerate(_as_list(policy.get("Statement", [])))
                     if str(st.get("Sid") or i) not in report.used]
    return report


# --- AWS's answer to a read of a key that is not there (the ledger proxy's) --------------------
_S3_ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                     b"<Message>Access Denied</Message><RequestId>LEDGER</RequestId></Error>")


def missing_key_status(policy: dict[str, Any], call: Call) -> int:
    """What S3 answers a GetObject (or HEAD) of a key that does not exist: 404 only when the
    caller may list the bucket, 403 otherwise (S3 will not tell a caller who cannot list what
    exists). moto always answers 404, so a test under the ledger proxy, which knows the role's
    grants, gets AWS's answer instead. A ListBucket grant counts when it would let the caller
    list the key itself as a prefix (AWS documents only the unconditioned grant; a grant
    narrowed by ``s3:prefix`` is judged as generously as that)."""
    if call.action != "s3:GetObject" or not call.resource.startswith("arn:aws:s3:::"):
        return 404
    bucket_arn, _, key = call.resource.partition("/")
    listing = Call("s3:ListBucket", bucket_arn, (("s3:prefix", key),))
    return 404 if evaluate(policy, listing).allowed else 403


def access_denied_body() -> bytes:
    """S3's 403 body, as S3 words it."""
    return _S3_ACCESS_DENIED
