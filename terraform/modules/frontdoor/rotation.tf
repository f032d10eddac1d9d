# Automatic rotation of the link key: Secrets Manager invokes a rotation function (the front
# door's zip, handler frontdoor.key_rotation.handler) every link_key_rotation_days. It has a
# role of its own: it may write the secret, which the public front door may only read.
# Why the period is what it is: see variable "link_key_rotation_days" and frontdoor/key_rotation.py.

locals {
  rotation_function = "${var.name_prefix}-frontdoor-key-rotation"
  rotation_days     = coalesce(var.link_key_rotation_days, max(30, var.results_retention_days + 1))
  rotation_grants = [
    {
      sid       = "RotateLinkKey"
      actions   = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"]
      resources = [aws_secretsmanager_secret.link_key.arn]
      condition = null
    },
    {
      sid       = "UseServiceKeyThroughSecretsManager"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
      condition = { StringEquals = { "kms:ViaService" = ["secretsmanager.${local.region}.amazonaws.com"] } }
    },
    {
      sid       = "WriteOwnLogs"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = ["${aws_cloudwatch_log_group.rotation.arn}:*"]
      condition = null
    },
  ]
  rotation_policy = {
    Version = "2012-10-17"
    Statement = [for g in local.rotation_grants : merge(
      { Sid = g.sid, Effect = "Allow", Action = g.actions, Resource = g.resources },
      { for k, v in { Condition = g.condition } : k => v if v != null },
    )]
  }
}

resource "aws_iam_role" "rotation" {
  name        = "${var.name_prefix}-frontdoor-key-rotation"
  description = "What the link key's rotation function may do"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.rotation_function}" }
      }
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "rotation" {
  name   = "key-rotation"
  role   = aws_iam_role.rotation.id
  policy = jsonencode(local.rotation_policy)
}

resource "aws_cloudwatch_log_group" "rotation" {
  name              = "/${var.name_prefix}/frontdoor-key-rotation"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "rotate_link_key" {
  #checkov:skip=CKV_AWS_117:It talks only to Secrets Manager over its public endpoint; a VPC would add NAT cost and nothing to protect.
  #checkov:skip=CKV_AWS_116:Secrets Manager invokes it synchronously and retries a failed rotation itself; there is no event to dead-letter.
  #checkov:skip=CKV_AWS_272:The zip is built and deployed by this repository's own pipeline; code signing would need a signing profile outside it.
  #checkov:skip=CKV_AWS_50:X-Ray would add xray:Put* grants beyond the listed least privilege; Secrets Manager records each rotation.
  #checkov:skip=CKV_AWS_173:It has no environment variables to encrypt.
  function_name                  = local.rotation_function
  description                    = "Headshots: rotates the link key (Secrets Manager rotation function)"
  role                           = aws_iam_role.rotation.arn
  filename                       = var.package_path
  source_code_hash               = filebase64sha256(var.package_path)
  handler                        = "frontdoor.key_rotation.handler"
  runtime                        = "python3.12"
  architectures                  = ["x86_64"]
  memory_size                    = 128
  timeout                        = 30
  reserved_concurrent_executions = 1
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.rotation.name
  }
  tags = local.tags
}

resource "aws_lambda_permission" "rotation" {
  statement_id   = "SecretsManagerRotatesTheLinkKey"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.rotate_link_key.function_name
  principal      = "secretsmanager.amazonaws.com"
  source_arn     = aws_secretsmanager_secret.link_key.arn
  source_account = local.account_id
}

resource "aws_secretsmanager_secret_rotation" "link_key" {
  #checkov:skip=CKV_AWS_304:The period is local.rotation_days, 30 days by default (checkov cannot evaluate it); it exceeds 90 only when results (and so links) are kept longer than 89 days, since a link must outlive at most one rotation.
  secret_id           = aws_secretsmanager_secret.link_key.id
  rotation_lambda_arn = aws_lambda_function.rotate_link_key.arn
  # The first rotation comes one period after the key Terraform wrote, not at apply.
  rotate_immediately = false
  rotation_rules {
    automatically_after_days = local.rotation_days
  }
  depends_on = [aws_lambda_permission.rotation, aws_secretsmanager_secret_version.link_key]
}
