# Least privilege, listed once (local.grants) so that the role's policy is generated from the
# list and a call-ledger test can check every AWS call the front door makes against it:
#   read results/ and status.json; sign POSTs to uploads/ (S3 put plus KMS); write feedback;
#   read the HMAC secret; keep rate-limit state; and write its own logs.

locals {
  grants = [
    {
      sid       = "ReadResultsAndStatus"
      actions   = ["s3:GetObject"]
      resources = ["${var.output_bucket_arn}/results/*", "${var.output_bucket_arn}/jobs/*/status.json"]
    },
    {
      # Presigned POST policies are signed with this role: S3 checks the role's right to put.
      # The manifest the front door writes last is under the same prefix.
      sid       = "SignUploadPolicies"
      actions   = ["s3:PutObject"]
      resources = ["${var.input_bucket_arn}/uploads/*"]
    },
    {
      # SSE-KMS: uploads are encrypted (GenerateDataKey) and results, the secret and the
      # function's environment decrypted (Decrypt) with the service's key.
      sid       = "UseServiceKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    },
    {
      sid       = "WriteFeedback"
      actions   = ["s3:PutObject"]
      resources = ["${var.output_bucket_arn}/feedback/*"]
    },
    {
      sid       = "ReadLinkKey"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.link_key.arn]
    },
    {
      sid       = "KeepRateLimitState"
      actions   = ["dynamodb:UpdateItem"]
      resources = [aws_dynamodb_table.rate_limits.arn]
    },
    {
      sid       = "WriteOwnLogs"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = ["${aws_cloudwatch_log_group.frontdoor.arn}:*"]
    },
  ]

  policy = {
    Version   = "2012-10-17"
    Statement = [for g in local.grants : { Sid = g.sid, Effect = "Allow", Action = g.actions, Resource = g.resources }]
  }
}

resource "aws_iam_role" "frontdoor" {
  name        = "${var.name_prefix}-frontdoor"
  description = "What the front door's code may do"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.function_name}" }
      }
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "frontdoor" {
  name   = "frontdoor"
  role   = aws_iam_role.frontdoor.id
  policy = jsonencode(local.policy)
}

