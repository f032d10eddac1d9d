# Pins the front door's deployment, offline (mock provider: nothing is created): the function
# URL, the link key and its rotation, the rate-limit table and its alarm, the trusted proxy,
# log retention, and the IAM grants exactly as listed (KMS only through its services).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  # The provider validates ARNs even when mocked.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots-test/frontdoor/link-key-AbCdEf", id = "arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots-test/frontdoor/link-key-AbCdEf" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/headshots-test-frontdoor-rate-limits" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/headshots-test/frontdoor" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:headshots-test-frontdoor" }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = { random_password = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://abc123.lambda-url.us-east-1.on.aws/" }
  }
}

variables {
  name_prefix            = "headshots-test"
  package_path           = "main.tf" # any existing file stands in for the zip: nothing is uploaded
  input_bucket_name      = "headshots-test-input-123456789012"
  input_bucket_arn       = "arn:aws:s3:::headshots-test-input-123456789012"
  output_bucket_name     = "headshots-test-output-123456789012"
  output_bucket_arn      = "arn:aws:s3:::headshots-test-output-123456789012"
  kms_key_arn            = "arn:aws:kms:us-east-1:123456789012:key/0000"
  results_retention_days = 30
  email_sender           = "headshots@example.com"
  ses_identity_arn       = "arn:aws:ses:us-east-1:123456789012:identity/headshots@example.com"
  ses_configuration_set  = "headshots-test-mail"
  alarm_actions          = ["arn:aws:sns:us-east-1:123456789012:headshots-test-alarms"]
}

run "a_public_function_url_runs_the_front_door_handler" {
  assert {
    condition     = aws_lambda_function_url.frontdoor.authorization_type == "NONE"
    error_message = "the front door is public: its own routes check tokens and signatures"
  }
  assert {
    condition     = aws_lambda_permission.public_url[0].action == "lambda:InvokeFunctionUrl" && aws_lambda_permission.public_url[0].function_url_auth_type == "NONE" && aws_lambda_permission.public_url[0].principal == "*"
    error_message = "public invocation is through the function URL"
  }
  assert {
    condition     = aws_lambda_function.frontdoor.handler == "frontdoor.lambda_handler.handler" && aws_lambda_function.frontdoor.runtime == "python3.12"
    error_message = "the Lambda runs frontdoor.lambda_handler.handler on Python 3.12"
  }
  assert {
    condition     = aws_lambda_function.frontdoor.reserved_concurrent_executions == 50 && aws_lambda_function.frontdoor.kms_key_arn == var.kms_key_arn
    error_message = "concurrency ceiling and an encrypted environment"
  }
  assert {
    condition     = aws_lambda_function.frontdoor.logging_config[0].log_group == "/headshots-test/frontdoor" && aws_cloudwatch_log_group.frontdoor.kms_key_id == var.kms_key_arn
    error_message = "logs go to an encrypted group under /<name_prefix>/ (where the key policy admits CloudWatch Logs)"
  }
  assert {
    condition     = output.HEADSHOTS_FRONTDOOR_URL == "https://abc123.lambda-url.us-east-1.on.aws" && output.origin == "https://abc123.lambda-url.us-east-1.on.aws"
    error_message = "links point at the function URL; its origin is what the input bucket's CORS allows"
  }
}

run "the_input_bucket_admits_browser_uploads_from_the_front_door_only" {
  assert {
    condition     = aws_s3_bucket_cors_configuration.uploads.bucket == var.input_bucket_name && one(aws_s3_bucket_cors_configuration.uploads.cors_rule).allowed_origins == toset(["https://abc123.lambda-url.us-east-1.on.aws"])
    error_message = "CORS is open to the front door's origin only"
  }
  assert {
    condition     = one(aws_s3_bucket_cors_configuration.uploads.cors_rule).allowed_methods == toset(["POST"])
    error_message = "browsers only POST (the signed policies); nothing else"
  }
}

run "a_custom_domain_is_the_links_origin_and_may_upload_too" {
  variables {
    public_url = "https://headshots.example.com"
  }
  assert {
    condition     = output.HEADSHOTS_FRONTDOOR_URL == "https://headshots.example.com" && aws_lambda_function.frontdoor.environment[0].variables["HEADSHOTS_FRONTDOOR_URL"] == "https://headshots.example.com"
    error_message = "links and pages use the custom domain"
  }
  assert {
    condition     = output.upload_origins == tolist(["https://headshots.example.com", "https://abc123.lambda-url.us-east-1.on.aws"])
    error_message = "both the domain and the function URL may upload"
  }
}

run "links_live_exactly_as_long_as_results_are_kept" {
  assert {
    condition     = output.HEADSHOTS_LINK_TTL_S == "2592000" && aws_lambda_function.frontdoor.environment[0].variables["HEADSHOTS_LINK_TTL_S"] == "2592000"
    error_message = "30 days of retention are 30 days of links, for the worker and the front door alike"
  }
  assert {
    condition     = toset(keys(output.worker_settings)) == toset(["HEADSHOTS_FRONTDOOR_URL", "HEADSHOTS_LINK_SECRET_ID", "HEADSHOTS_LINK_TTL_S"])
    error_message = "the worker gets the URL, the key's secret and the lifetime"
  }
  assert {
    condition = alltrue([for k, v in {
      HEADSHOTS_INPUT_BUCKET              = var.input_bucket_name
      HEADSHOTS_OUTPUT_BUCKET             = var.output_bucket_name
      HEADSHOTS_AWS_REGION                = "us-east-1"
      HEADSHOTS_LINK_SECRET_ID            = aws_secretsmanager_secret.link_key.arn
      HEADSHOTS_FRONTDOOR_RATELIMIT_TABLE = aws_dynamodb_table.rate_limits.name
    } : aws_lambda_function.frontdoor.environment[0].variables[k] == v])
    error_message = "the function's settings"
  }
}

run "the_link_key_is_a_write_only_random_secret_under_the_service_key" {
  assert {
    condition     = aws_secretsmanager_secret.link_key.kms_key_id == var.kms_key_arn && aws_secretsmanager_secret.link_key.name == "headshots-test/frontdoor/link-key"
    error_message = "the HMAC key's secret is encrypted with the service key"
  }
  assert {
    condition     = aws_secretsmanager_secret_version.link_key.secret_string_wo_version == 1 && aws_secretsmanager_secret_version.link_key.secret_string == null
    error_message = "the key is written write-only (never in plan or state); bumping link_key_version rotates it"
  }
  assert {
    condition     = aws_dynamodb_table.rate_limits.ttl[0].enabled && aws_dynamodb_table.rate_limits.ttl[0].attribute_name == "expires_at" && aws_dynamodb_table.rate_limits.server_side_encryption[0].kms_key_arn == var.kms_key_arn
    error_message = "rate-limit counters expire by TTL, encrypted with the service key"
  }
}

run "iam_is_exactly_the_listed_grants" {
  assert {
    condition = jsondecode(output.policy_json).Statement == [
      { Sid = "ReadResultsAndStatus", Effect = "Allow", Action = ["s3:GetObject"], Resource = ["arn:aws:s3:::headshots-test-output-123456789012/results/*", "arn:aws:s3:::headshots-test-output-123456789012/jobs/*/status.json"] },
      { Sid = "CountUploadsOfOneJob", Effect = "Allow", Action = ["s3:ListBucket"], Resource = ["arn:aws:s3:::headshots-test-input-123456789012"], Condition = { StringLike = { "s3:prefix" = ["uploads/?*/"] } } },
      { Sid = "SignUploadPolicies", Effect = "Allow", Action = ["s3:PutObject"], Resource = ["arn:aws:s3:::headshots-test-input-123456789012/uploads/*"] },
      { Sid = "UseServiceKey", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = ["arn:aws:kms:us-east-1:123456789012:key/0000"], Condition = { StringEquals = { "kms:ViaService" = ["s3.us-east-1.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com", "lambda.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com"] } } },
      { Sid = "WriteFeedback", Effect = "Allow", Action = ["s3:PutObject"], Resource = ["arn:aws:s3:::headshots-test-output-123456789012/feedback/*", "arn:aws:s3:::headshots-test-output-123456789012/clicks/*"] },
      { Sid = "ReadLinkKey", Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = ["arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots-test/frontdoor/link-key-AbCdEf"] },
      { Sid = "KeepRateLimitState", Effect = "Allow", Action = ["dynamodb:UpdateItem", "dynamodb:GetItem"], Resource = ["arn:aws:dynamodb:us-east-1:123456789012:table/headshots-test-frontdoor-rate-limits"] },
      { Sid = "SendCodeEmail", Effect = "Allow", Action = ["ses:SendRawEmail"], Resource = ["arn:aws:ses:us-east-1:123456789012:identity/headshots@example.com", "arn:aws:ses:us-east-1:123456789012:configuration-set/headshots-test-mail"], Condition = { StringEquals = { "ses:FromAddress" = "headshots@example.com" } } },
      { Sid = "WriteOwnLogs", Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = ["arn:aws:logs:us-east-1:123456789012:log-group:/headshots-test/frontdoor:*"] },
    ]
    error_message = "the front door's policy is exactly its listed grants"
  }
  assert {
    condition     = aws_iam_role_policy.frontdoor.policy == output.policy_json && length(output.iam_grants) == 9
    error_message = "the role carries the rendered grants and nothing else"
  }
  assert {
    condition     = jsondecode(aws_iam_role.frontdoor.assume_role_policy).Statement[0].Principal.Service == "lambda.amazonaws.com"
    error_message = "only Lambda assumes the front door's role"
  }
}

run "the_service_key_is_usable_only_through_the_services_that_hold_data_under_it" {
  assert {
    condition = alltrue([for st in concat(jsondecode(output.policy_json).Statement, jsondecode(output.rotation_policy_json).Statement) :
    can(st.Condition.StringEquals["kms:ViaService"]) if anytrue([for a in st.Action : startswith(a, "kms:")])])
    error_message = "every KMS grant (front door and rotation function) carries kms:ViaService"
  }
  assert {
    # Lambda decrypts the function's environment with the role at each cold start: lambda.<region> must be there.
    condition     = contains([for st in jsondecode(output.policy_json).Statement : st if st.Sid == "UseServiceKey"][0].Condition.StringEquals["kms:ViaService"], "lambda.us-east-1.amazonaws.com") && aws_lambda_function.frontdoor.kms_key_arn == var.kms_key_arn
    error_message = "cold starts can still decrypt the environment"
  }
  assert {
    condition     = [for st in jsondecode(output.rotation_policy_json).Statement : st.Condition.StringEquals["kms:ViaService"] if st.Sid == "UseServiceKeyThroughSecretsManager"][0] == ["secretsmanager.us-east-1.amazonaws.com"]
    error_message = "the rotation function uses the key through Secrets Manager only"
  }
}

run "the_link_key_rotates_automatically_on_a_period_longer_than_a_link_lives" {
  assert {
    condition     = aws_secretsmanager_secret_rotation.link_key.rotation_rules[0].automatically_after_days == 31 && aws_secretsmanager_secret_rotation.link_key.rotate_immediately == false
    error_message = "30 days of links: a rotation every 31 days (one link lifetime plus a day), the first one a period after apply"
  }
  assert {
    condition     = aws_secretsmanager_secret_rotation.link_key.rotation_lambda_arn == aws_lambda_function.rotate_link_key.arn && aws_lambda_function.rotate_link_key.handler == "frontdoor.key_rotation.handler" && aws_lambda_function.rotate_link_key.role == aws_iam_role.rotation.arn
    error_message = "the rotation function is the front door's zip with its own role"
  }
  assert {
    condition     = aws_lambda_permission.rotation.principal == "secretsmanager.amazonaws.com" && aws_lambda_permission.rotation.source_arn == aws_secretsmanager_secret.link_key.arn
    error_message = "only Secrets Manager, for the link key, invokes the rotation function"
  }
  assert {
    condition     = [for st in jsondecode(output.rotation_policy_json).Statement : st.Action if st.Sid == "RotateLinkKey"][0] == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"] && !anytrue([for st in jsondecode(output.policy_json).Statement : contains(st.Action, "secretsmanager:PutSecretValue")])
    error_message = "the rotation function may write the key; the public front door may not"
  }
}

run "a_rotation_period_shorter_than_a_link_lifetime_is_refused" {
  command = plan
  variables {
    link_key_rotation_days = 30 # links live 30 days here
  }
  expect_failures = [var.link_key_rotation_days]
}

run "a_longer_rotation_period_may_be_chosen" {
  command = plan
  variables {
    link_key_rotation_days = 90
  }
  assert {
    condition     = aws_secretsmanager_secret_rotation.link_key.rotation_rules[0].automatically_after_days == 90
    error_message = "the chosen period"
  }
}

run "a_short_link_key_of_your_own_is_refused" {
  command = plan
  variables {
    generate_link_key = false
    link_key          = "0123456789abcdef0123456789abcde" # 31 characters
  }
  expect_failures = [var.link_key]
}

run "without_a_proxy_the_url_is_public_and_no_forwarding_header_is_trusted" {
  assert {
    condition     = aws_lambda_function.frontdoor.environment[0].variables["HEADSHOTS_FRONTDOOR_TRUSTED_PROXY"] == "none" && aws_lambda_function_url.frontdoor.authorization_type == "NONE" && length(aws_lambda_permission.cloudfront) == 0 && length(aws_lambda_permission.public_url) == 1
    error_message = "no proxy: clients are counted by the connection's own address"
  }
}

run "behind_cloudfront_only_the_distribution_reaches_the_url_and_its_viewer_header_counts" {
  variables {
    trusted_proxy               = "cloudfront"
    cloudfront_distribution_arn = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
    public_url                  = "https://headshots.example.com"
  }
  assert {
    condition     = aws_lambda_function.frontdoor.environment[0].variables["HEADSHOTS_FRONTDOOR_TRUSTED_PROXY"] == "cloudfront"
    error_message = "the front door is told which proxy's header to trust"
  }
  assert {
    condition     = aws_lambda_function_url.frontdoor.authorization_type == "AWS_IAM" && length(aws_lambda_permission.public_url) == 0
    error_message = "nobody but the distribution can reach the URL (so nobody can forge the viewer header)"
  }
  assert {
    condition     = aws_lambda_permission.cloudfront[0].principal == "cloudfront.amazonaws.com" && aws_lambda_permission.cloudfront[0].source_arn == var.cloudfront_distribution_arn && aws_lambda_permission.cloudfront[0].function_url_auth_type == "AWS_IAM"
    error_message = "the distribution, and only it, invokes the URL"
  }
  assert {
    condition     = strcontains(output.invoke_permission_command, "--principal cloudfront.amazonaws.com") && strcontains(output.invoke_permission_command, "distribution/E2EXAMPLE")
    error_message = "the one-off CLI permission names the distribution too"
  }
}

run "a_trusted_proxy_needs_its_distribution" {
  command = plan
  variables {
    trusted_proxy = "cloudfront"
  }
  expect_failures = [var.cloudfront_distribution_arn]
}

run "a_global_cap_hit_raises_an_alarm" {
  assert {
    condition     = aws_cloudwatch_log_metric_filter.cap_hit.log_group_name == aws_cloudwatch_log_group.frontdoor.name && aws_cloudwatch_log_metric_filter.cap_hit.pattern == "{ $.event = \"frontdoor_cap_hit\" }"
    error_message = "the front door's frontdoor_cap_hit log event is counted"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.cap_hit.metric_name == aws_cloudwatch_log_metric_filter.cap_hit.metric_transformation[0].name && aws_cloudwatch_metric_alarm.cap_hit.threshold == 0 && aws_cloudwatch_metric_alarm.cap_hit.comparison_operator == "GreaterThanThreshold" && aws_cloudwatch_metric_alarm.cap_hit.alarm_actions == toset(var.alarm_actions)
    error_message = "any cap hit alarms the operators"
  }
  assert {
    condition = alltrue([for k, v in {
      HEADSHOTS_FRONTDOOR_PROOF_EMAILS_PER_HOUR             = "500"
      HEADSHOTS_FRONTDOOR_JOBS_PER_HOUR                     = "100"
      HEADSHOTS_FRONTDOOR_PROOF_EMAILS_PER_ADDRESS_PER_HOUR = "3"
      HEADSHOTS_EMAIL_BACKEND                               = "ses"
      HEADSHOTS_EMAIL_SENDER                                = "headshots@example.com"
    } : aws_lambda_function.frontdoor.environment[0].variables[k] == v])
    error_message = "the limits and the code email's sender reach the function"
  }
}

run "logs_are_kept_a_year_and_hold_no_personal_data" {
  assert {
    condition     = aws_cloudwatch_log_group.frontdoor.retention_in_days == 365 && aws_cloudwatch_log_group.rotation.retention_in_days == 365 && aws_cloudwatch_log_group.rotation.kms_key_id == var.kms_key_arn
    error_message = "the front door's logs (job ids, routes, statuses, limit events: no address, name or IP) are kept a year, encrypted"
  }
}

run "your_own_key_instead_of_a_generated_one" {
  variables {
    generate_link_key = false
    link_key          = "fedcba9876543210fedcba9876543210fedcba9876543210"
  }
  assert {
    condition     = length(data.aws_secretsmanager_random_password.link_key) == 0 && aws_secretsmanager_secret_version.link_key.secret_string_wo_version == 1
    error_message = "with a key of your own, nothing is generated"
  }
}

run "retention_must_be_whole_days_within_a_year" {
  command = plan
  variables {
    results_retention_days = 400
  }
  expect_failures = [var.results_retention_days]
}
