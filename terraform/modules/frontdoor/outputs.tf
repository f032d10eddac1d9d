# Outputs named HEADSHOTS_* are worker settings (processor/settings.py): the worker signs the
# links in its emails with the link key and points them at this front door.

locals {
  function_url = aws_lambda_function_url.frontdoor.function_url
  public_url   = coalesce(var.public_url, trimsuffix(local.function_url, "/"))
  origin       = regex("^https?://[^/]+", local.public_url)
  # the upload page's origin first; the function URL's too when a custom domain fronts it
  upload_origins = distinct(concat([local.origin, trimsuffix(local.function_url, "/")], var.extra_upload_origins))
  worker_settings = {
    HEADSHOTS_FRONTDOOR_URL  = local.public_url
    HEADSHOTS_LINK_SECRET_ID = aws_secretsmanager_secret.link_key.arn
    HEADSHOTS_LINK_TTL_S     = tostring(local.link_ttl_s)
  }
}

output "HEADSHOTS_FRONTDOOR_URL" {
  description = "Where the emailed links point: the function URL, or public_url."
  value       = local.worker_settings["HEADSHOTS_FRONTDOOR_URL"]
}

output "HEADSHOTS_LINK_SECRET_ID" {
  description = "The link key's secret, read by the worker (signs) and the front door (verifies)."
  value       = local.worker_settings["HEADSHOTS_LINK_SECRET_ID"]
}

output "HEADSHOTS_LINK_TTL_S" {
  description = "Lifetime of the emailed links: exactly the results retention, in seconds."
  value       = local.worker_settings["HEADSHOTS_LINK_TTL_S"]
}

output "worker_settings" {
  description = "The HEADSHOTS_* outputs above as one map (merged into the worker's environment)."
  value       = local.worker_settings
}

output "url" {
  description = "The function URL (the upload page is its root)."
  value       = local.function_url
}

output "origin" {
  description = "The browser origin of the front door: the input bucket's CORS allows it alone."
  value       = local.origin
}

output "function_name" {
  description = "The front door's Lambda function."
  value       = aws_lambda_function.frontdoor.function_name
}

output "role_arn" {
  description = "The front door's role."
  value       = aws_iam_role.frontdoor.arn
}

output "iam_grants" {
  description = "The front door's IAM grants, exactly (sid, actions, resources): for the call-ledger test."
  value       = local.grants
}

output "policy_json" {
  description = "The role policy rendered from iam_grants."
  value       = jsonencode(local.policy)
}

output "lambda_environment" {
  description = "The function's environment (HEADSHOTS_* settings)."
  value       = local.environment
}

output "link_secret_arn" {
  description = "The link key's secret."
  value       = aws_secretsmanager_secret.link_key.arn
}

output "rate_limit_table" {
  description = "The rate-limit counters' table."
  value       = aws_dynamodb_table.rate_limits.name
}

output "invoke_permission_command" {
  description = "Run once after the first apply (hashicorp/aws < 6.29 cannot express it): lambda:InvokeFunction through the URL only (for everyone, or for the CloudFront distribution when trusted_proxy is cloudfront)."
  value = local.behind_cloudfront ? (
    "aws lambda add-permission --region ${local.region} --function-name ${aws_lambda_function.frontdoor.function_name} --statement-id FrontDoorInvokeViaUrl --action lambda:InvokeFunction --principal cloudfront.amazonaws.com --source-arn ${coalesce(var.cloudfront_distribution_arn, "-")} --invoked-via-function-url"
    ) : (
    "aws lambda add-permission --region ${local.region} --function-name ${aws_lambda_function.frontdoor.function_name} --statement-id FrontDoorInvokeViaUrl --action lambda:InvokeFunction --principal '*' --invoked-via-function-url"
  )
}

output "rotation_function_name" {
  description = "The link key's rotation function (Secrets Manager invokes it on the schedule)."
  value       = aws_lambda_function.rotate_link_key.function_name
}

output "rotation_policy_json" {
  description = "The rotation function's role policy."
  value       = jsonencode(local.rotation_policy)
}

output "upload_origins" {
  description = "Origins the input bucket's CORS rule admits (POST only)."
  value       = local.upload_origins
}
