"""The IAM call ledger's parsers and evaluator: AWS's rules where moto's enforcement is lenient."""

from __future__ import annotations

import json

import pytest

from processor.devkit.iam_ledger import Call, calls_from_request, check, evaluate

R, A = "us-east-1", "123456789012"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Objects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
     "Resource": "arn:aws:s3:::out/jobs/*"},
    {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::out",
     "Condition": {"StringLike": {"s3:prefix": ["jobs/*"]}}},
    {"Sid": "Mail", "Effect": "Allow", "Action": "ses:SendRawEmail", "Resource": "*",
     "Condition": {"StringEquals": {"ses:FromAddress": "bot@example.com"}}},
    {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:Delete*", "Resource": "*"},
]}


def test_s3_path_style_requests_become_object_and_bucket_calls() -> None:
    assert calls_from_request("s3", "GET", "/out/jobs/j1/status.json", {}, b"", R, A) == \
        [Call("s3:GetObject", "arn:aws:s3:::out/jobs/j1/status.json")]
    assert calls_from_request("s3", "HEAD", "/out/a%20b.jpg", {}, b"", R, A) == \
        [Call("s3:GetObject", "arn:aws:s3:::out/a b.jpg")]
    [listing] = calls_from_request("s3", "GET", "/out?list-type=2&prefix=jobs%2Fj1%2F", {}, b"", R, A)
    assert listing == Call("s3:ListBucket", "arn:aws:s3:::out", (("s3:prefix", "jobs/j1/"),))
    assert calls_from_request("s3", "GET", "/in?uploads&prefix=uploads%2Fj%2F", {}, b"", R, A) == \
        [Call("s3:ListBucketMultipartUploads", "arn:aws:s3:::in")]
    assert calls_from_request("s3", "DELETE", "/in/uploads/j/a.jpg?uploadId=u1", {}, b"", R, A) == \
        [Call("s3:AbortMultipartUpload", "arn:aws:s3:::in/uploads/j/a.jpg")]
    body = b"<Delete><Object><Key>uploads/j/a.jpg</Key></Object><Object><Key>uploads/j/b&amp;c.jpg</Key></Object></Delete>"
    assert [c.resource for c in calls_from_request("s3", "POST", "/in?delete", {}, body, R, A)] == \
        ["arn:aws:s3:::in/uploads/j/a.jpg", "arn:aws:s3:::in/uploads/j/b&c.jpg"]


def test_sqs_json_and_query_protocols_name_the_queue_arn() -> None:
    body = json.dumps({"QueueUrl": "http://127.0.0.1:5000/123456789012/jobs"}).encode()
    assert calls_from_request("sqs", "POST", "/", {"X-Amz-Target": "AmazonSQS.ReceiveMessage"}, body, R, A) == \
        [Call("sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:123456789012:jobs")]
    form = b"Action=DeleteMessage&QueueUrl=http%3A%2F%2Fx%2F123456789012%2Fjobs-dlq"
    assert calls_from_request("sqs", "POST", "/", {}, form, R, A)[0].resource.endswith(":jobs-dlq")


def test_dynamodb_and_secrets_manager_name_their_resources() -> None:
    body = json.dumps({"TableName": "rate-limits", "Key": {"pk": {"S": "x"}}}).encode()
    assert calls_from_request("dynamodb", "POST", "/", {"X-Amz-Target": "DynamoDB_20120810.UpdateItem"}, body, R, A) == \
        [Call("dynamodb:UpdateItem", "arn:aws:dynamodb:us-east-1:123456789012:table/rate-limits")]
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf"
    assert calls_from_request("secretsmanager", "POST", "/", {"X-Amz-Target": "secretsmanager.GetSecretValue"},
                              json.dumps({"SecretId": arn}).encode(), R, A) == [Call("secretsmanager:GetSecretValue", arn)]


def test_ses_carries_the_from_address_condition_key() -> None:
    form = b"Action=SendRawEmail&Source=Bot+%3Cbot%40example.com%3E"
    [call] = calls_from_request("ses", "POST", "/", {}, form, R, A)
    assert call.action == "ses:SendRawEmail" and call.keys() == {"ses:fromaddress": ["bot@example.com"]}
    assert evaluate(POLICY, call).allowed
    other = Call("ses:SendRawEmail", "*", (("ses:FromAddress", "evil@example.com"),))
    assert not evaluate(POLICY, other).allowed


def test_a_condition_whose_key_the_request_lacks_does_not_match_unless_if_exists() -> None:
    """Where moto lets it pass, AWS does not: StringLike on an absent key is false."""
    assert not evaluate(POLICY, Call("s3:ListBucket", "arn:aws:s3:::out")).allowed
    assert not evaluate(POLICY, Call("ses:SendRawEmail", "*")).allowed
    lenient = {"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
                              "Condition": {"StringLikeIfExists": {"s3:prefix": ["jobs/*"]}}}]}
    assert evaluate(lenient, Call("s3:ListBucket", "arn:aws:s3:::out")).allowed


def test_an_explicit_deny_wins_and_resources_match_by_wildcard() -> None:
    assert not evaluate(POLICY, Call("s3:DeleteObject", "arn:aws:s3:::out/jobs/x")).allowed
    assert evaluate(POLICY, Call("s3:GetObject", "arn:aws:s3:::out/jobs/j/work/a")).allowed
    assert not evaluate(POLICY, Call("s3:GetObject", "arn:aws:s3:::out/class-images/k/0.png")).allowed
    assert evaluate(POLICY, Call("s3:ListBucket", "arn:aws:s3:::out", (("s3:prefix", "jobs/j/"),))).allowed


def test_the_report_lists_denied_calls_and_unused_statements() -> None:
    report = check(POLICY, [Call("s3:GetObject", "arn:aws:s3:::out/jobs/a"),
                            Call("s3:GetObject", "arn:aws:s3:::out/jobs/a"),
                            Call("s3:PutObject", "arn:aws:s3:::out/class-images/k/0.png")])
    assert len(report.calls) == 2 and [c.resource for c, _ in report.denied] == ["arn:aws:s3:::out/class-images/k/0.png"]
    assert report.unused == ["List", "Mail", "NoDelete"]


def test_an_operator_beyond_the_evaluator_is_refused_not_guessed() -> None:
    odd = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                          "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}
    with pytest.raises(ValueError):
        evaluate(odd, Call("s3:GetObject", "*", (("aws:SourceIp", "10.1.2.3"),)))


def test_a_missing_key_is_403_to_a_caller_who_cannot_list_the_bucket_and_404_to_one_who_can() -> None:
    from processor.devkit.iam_ledger import missing_key_status

    read_only = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::out/jobs/*"}]}
    may_list = {"Statement": [*read_only["Statement"], {
        "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::out",
        "Condition": {"StringLike": {"s3:prefix": ["jobs/*"]}}}]}
    get = Call("s3:GetObject", "arn:aws:s3:::out/jobs/j/status.json")
    assert missing_key_status(read_only, get) == 403  # what AWS answers the front door (moto: 404)
    assert missing_key_status(may_list, get) == 404
    assert missing_key_status(may_list, Call("s3:GetObject", "arn:aws:s3:::out/results/j/x.jpg")) == 403
    assert missing_key_status(read_only, Call("s3:PutObject", "arn:aws:s3:::out/jobs/x")) == 404  # reads only


def test_set_form_operators_on_an_absent_key_follow_aws() -> None:
    """AWS reads an absent key as the empty set: ForAllValues is vacuously true, ForAnyValue
    false, negated or not (it was the other way round for both)."""
    def allowed(operator: str) -> bool:
        policy = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                                 "Condition": {operator: {"aws:TagKeys": ["team"]}}}]}
        return evaluate(policy, Call("s3:GetObject", "arn:aws:s3:::b/k")).allowed
    assert allowed("ForAllValues:StringEquals") and allowed("ForAllValues:StringNotEquals")
    assert allowed("ForAllValues:StringLike")
    assert not allowed("ForAnyValue:StringEquals") and not allowed("ForAnyValue:StringNotEquals")
    assert not allowed("ForAnyValue:StringNotLike")
    assert allowed("ForAnyValue:StringEqualsIfExists")
    present = Call("s3:GetObject", "arn:aws:s3:::b/k", (("aws:TagKeys", "team"), ("aws:TagKeys", "x")))
    policy = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                             "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}}]}
    assert not evaluate(policy, present).allowed  # "x" is not in the set: the key's values decide
