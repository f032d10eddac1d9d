# The front door: one Lambda behind a function URL (upload policies, status, gallery, signed
# download links, ratings), its link key in Secrets Manager, a DynamoDB table of rate-limit
# counters and its log group. The code is a zip built by scripts/build-frontdoor-zip.sh.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  region        = data.aws_region.current.name
  function_name = "${var.name_prefix}-frontdoor"
  # Under /<name_prefix>/: the storage module's key policy lets CloudWatch Logs use the key there.
  log_group  = "/${var.name_prefix}/frontdoor"
  link_ttl_s = var.results_retention_days * 86400

  environment = merge({
    HEADSHOTS_INPUT_BUCKET                       = var.input_bucket_name
    HEADSHOTS_OUTPUT_BUCKET                      = var.output_bucket_name
    HEADSHOTS_AWS_REGION                         = local.region
    HEADSHOTS_LINK_SECRET_ID                     = aws_secretsmanager_secret.link_key.arn
    HEADSHOTS_LINK_TTL_S                         = tostring(local.link_ttl_s)
    HEADSHOTS_FRONTDOOR_RATELIMIT_TABLE          = aws_dynamodb_table.rate_limits.name
    HEADSHOTS_FRONTDOOR_UPLOAD_TTL_S             = tostring(var.upload_policy_ttl_s)
    HEADSHOTS_FRONTDOOR_REDIRECT_TTL_S           = tostring(var.redirect_ttl_s)
    HEADSHOTS_FRONTDOOR_JOBS_PER_CLIENT_PER_HOUR = tostring(var.jobs_per_client_per_hour)
    HEADSHOTS_FRONTDOOR_JOBS_PER_ADDRESS_PER_DAY = tostring(var.jobs_per_address_per_day)
    HEADSHOTS_LOG_FORMAT                         = "json"
  }, var.public_url == null ? {} : { HEADSHOTS_FRONTDOOR_URL = var.public_url })

  tags = merge({ service = "headshots", module = "frontdoor" }, var.tags)
}

resource "aws_cloudwatch_log_group" "frontdoor" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "frontdoor" {
  #checkov:skip=CKV_AWS_117:The front door talks only to S3, DynamoDB and Secrets Manager over their public endpoints; a VPC would add NAT cost and nothing to protect.
  #checkov:skip=CKV_AWS_116:Function-URL invocations are synchronous: the caller gets the error, there is no event to dead-letter.
  #checkov:skip=CKV_AWS_272:The zip is built and deployed by this repository's own pipeline; code signing would need a signing profile outside it.
  #checkov:skip=CKV_AWS_50:X-Ray would add xray:Put* grants beyond the listed least privilege; structured logs carry each request's route, status and time.
  function_name                  = local.function_name
  description                    = "Headshots front door: uploads, status, gallery, signed links, ratings"
  role                           = aws_iam_role.frontdoor.arn
  filename                       = var.package_path
  source_code_hash               = filebase64sha256(var.package_path)
  handler                        = "frontdoor.lambda_handler.handler"
  runtime                        = "python3.12"
  architectures                  = ["x86_64"]
  memory_size                    = var.memory_mb
  timeout                        = 15
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn
  environment {
    variables = local.environment
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.frontdoor.name
  }
  tags = local.tags
}

resource "aws_lambda_function_url" "frontdoor" {
  #checkov:skip=CKV_AWS_258:The front door is the public website: every route checks its own secret (job token, signed link, signed ticket) or is rate-limited.
  function_name      = aws_lambda_function.frontdoor.function_name
  authorization_type = "NONE"
}

# Public invocation through the URL only. Since October 2025 AWS also requires
# lambda:InvokeFunction with lambda:InvokedViaFunctionUrl=true for new function URLs; the
# mirrored hashicorp/aws 5.x cannot express that condition (6.29 adds invoked_via_function_url),
# so output "invoke_permission_command" prints the one AWS CLI call that adds it.
resource "aws_lambda_permission" "public_url" {
  #checkov:skip=CKV_AWS_301:Public by design, and only through the function URL (function_url_auth_type NONE); each route checks its own secret or is rate-limited.
  statement_id           = "FrontDoorPublicUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.frontdoor.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

# Browsers upload straight to the input bucket with the POST policies the front door signs; the
# bucket answers CORS for the front door's origin (and any extra ones) and nobody else.
resource "aws_s3_bucket_cors_configuration" "uploads" {
  bucket = var.input_bucket_name
  cors_rule {
    allowed_methods = ["POST"]
    allowed_origins = local.upload_origins
    max_age_seconds = 3000
  }
}
