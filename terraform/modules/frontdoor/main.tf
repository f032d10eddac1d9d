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

  ses_configuration_set_arn = "arn:${local.partition}:ses:${local.region}:${local.account_id}:configuration-set/${var.ses_configuration_set}"
  behind_cloudfront         = var.trusted_proxy == "cloudfront"

  environment = merge({
    HEADSHOTS_INPUT_BUCKET                                = var.input_bucket_name
    HEADSHOTS_OUTPUT_BUCKET                               = var.output_bucket_name
    HEADSHOTS_AWS_REGION                                  = local.region
    HEADSHOTS_LINK_SECRET_ID                              = aws_secretsmanager_secret.link_key.arn
    HEADSHOTS_LINK_TTL_S                                  = tostring(local.link_ttl_s)
    HEADSHOTS_FRONTDOOR_RATELIMIT_TABLE                   = aws_dynamodb_table.rate_limits.name
    HEADSHOTS_FRONTDOOR_UPLOAD_TTL_S                      = tostring(var.upload_policy_ttl_s)
    HEADSHOTS_FRONTDOOR_REDIRECT_TTL_S                    = tostring(var.redirect_ttl_s)
    HEADSHOTS_FRONTDOOR_JOBS_PER_CLIENT_PER_HOUR          = tostring(var.jobs_per_client_per_hour)
    HEADSHOTS_FRONTDOOR_JOBS_PER_ADDRESS_PER_DAY          = tostring(var.jobs_per_address_per_day)
    HEADSHOTS_FRONTDOOR_JOBS_PER_HOUR                     = tostring(var.jobs_per_hour)
    HEADSHOTS_FRONTDOOR_PROOF_EMAILS_PER_ADDRESS_PER_HOUR = tostring(var.proof_emails_per_address_per_hour)
    HEADSHOTS_FRONTDOOR_PROOF_EMAILS_PER_ADDRESS_PER_DAY  = tostring(var.proof_emails_per_address_per_day)
    HEADSHOTS_FRONTDOOR_PROOF_EMAILS_PER_CLIENT_PER_HOUR  = tostring(var.proof_emails_per_client_per_hour)
    HEADSHOTS_FRONTDOOR_PROOF_EMAILS_PER_HOUR             = tostring(var.proof_emails_per_hour)
    HEADSHOTS_FRONTDOOR_TRUSTED_PROXY                     = var.trusted_proxy
    HEADSHOTS_EMAIL_BACKEND                               = "ses"
    HEADSHOTS_EMAIL_SENDER                                = var.email_sender
    HEADSHOTS_LOG_FORMAT                                  = "json"
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
  #checkov:skip=CKV_AWS_258:The front door is the public website: every route checks its own secret (job token, signed link, signed ticket) or is rate-limited. Behind CloudFront (trusted_proxy) it is AWS_IAM: the distribution only.
  function_name = aws_lambda_function.frontdoor.function_name
  # Behind CloudFront the URL answers the distribution alone (origin access control signs its
  # requests), which is what makes CloudFront's viewer-address header trustworthy.
  authorization_type = local.behind_cloudfront ? "AWS_IAM" : "NONE"
}

# Public invocation through the URL only. Since October 2025 AWS also requires
# lambda:InvokeFunction with lambda:InvokedViaFunctionUrl=true for new function URLs; the
# mirrored hashicorp/aws 5.x cannot express that condition (6.29 adds invoked_via_function_url),
# so output "invoke_permission_command" prints the one AWS CLI call that adds it.
resource "aws_lambda_permission" "public_url" {
  #checkov:skip=CKV_AWS_301:Public by design, and only through the function URL (function_url_auth_type NONE); each route checks its own secret or is rate-limited.
  count                  = local.behind_cloudfront ? 0 : 1
  statement_id           = "FrontDoorPublicUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.frontdoor.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

# Behind CloudFront: the named distribution may invoke the URL, nobody else.
resource "aws_lambda_permission" "cloudfront" {
  count                  = local.behind_cloudfront ? 1 : 0
  statement_id           = "FrontDoorThroughCloudFront"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.frontdoor.function_name
  principal              = "cloudfront.amazonaws.com"
  source_arn             = var.cloudfront_distribution_arn
  function_url_auth_type = "AWS_IAM"
}

# A global cap hit (every code email or every start of the hour is spent: a flood, or real
# demand beyond the budget) is logged as frontdoor_cap_hit; this turns it into an alarm.
resource "aws_cloudwatch_log_metric_filter" "cap_hit" {
  name           = "${var.name_prefix}-frontdoor-cap-hit"
  log_group_name = aws_cloudwatch_log_group.frontdoor.name
  pattern        = "{ $.event = \"frontdoor_cap_hit\" }"
  metric_transformation {
    name          = "FrontDoorCapHit"
    namespace     = "Headshots/${var.name_prefix}"
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "cap_hit" {
  alarm_name          = "${var.name_prefix}-frontdoor-global-cap-hit"
  alarm_description   = "The front door refused requests at a global cap (code emails or started jobs per hour): a flood, or demand beyond the budget. Look at the front door's log (frontdoor_cap_hit) and the rate-limit settings."
  namespace           = "Headshots/${var.name_prefix}"
  metric_name         = "FrontDoorCapHit"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
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
