# Pins the front door's deployment, offline (mock provider: nothing is created): the function
# URL, the link key, the rate-limit table, and the IAM grants exactly as listed.

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
}

run "a_public_function_url_runs_the_front_door_handler" {
  assert {
    condition     = aws_lambda_function_url.frontdoor.authorization_type == "NONE"
    error_message = "the front door is public: its own routes check tokens and signatures"
  }
  assert {
    condition     = aws_lambda_permission.public_url.action == "lambda:InvokeFunctionUrl" && aws_lambda_permission.public_url.function_url_auth_type == "NONE" && aws_lambda_permission.public_url.principal == "*"
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
    condition     = aws_lambda_function.frontdoor.logging_config[0].log_group == "/headshots-test/frontdoor" && aws_cloudwatch_log_group.frontdoor.kms_key_id == var.kms_key_arn && aws_cloudwatch_log_group.frontdoor.retention_in_days == 365
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
      { Sid = "SignUploadPolicies", Effect = "Allow", Action = ["s3:PutObject"], Resource = ["arn:aws:s3:::headshots-test-input-123456789012/uploads/*"] },
      { Sid = "UseServiceKey", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = ["arn:aws:kms:us-east-1:123456789012:key/0000"] },
      { Sid = "WriteFeedback", Effect = "Allow", Action = ["s3:PutObject"], Resource = ["arn:aws:s3:::headshots-test-output-123456789012/feedback/*"] },
      { Sid = "ReadLinkKey", Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = ["arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots-test/frontdoor/link-key-AbCdEf"] },
      { Sid = "KeepRateLimitState", Effect = "Allow", Action = ["dynamodb:UpdateItem"], Resource = ["arn:aws:dynamodb:us-east-1:123456789012:table/headshots-test-frontdoor-rate-limits"] },
      { Sid = "WriteOwnLogs", Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = ["arn:aws:logs:us-east-1:123456789012:log-group:/headshots-test/frontdoor:*"] },
    ]
    error_message = "the front door's policy is exactly its listed grants"
  }
  assert {
    condition     = aws_iam_role_policy.frontdoor.policy == output.policy_json && length(output.iam_grants) == 7
    error_message = "the role carries the rendered grants and nothing else"
  }
  assert {
    condition     = jsondecode(aws_iam_role.frontdoor.assume_role_policy).Statement[0].Principal.Service == "lambda.amazonaws.com"
    error_message = "only Lambda assumes the front door's role"
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
