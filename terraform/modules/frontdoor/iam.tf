# Least privilege, listed once (local.grants) so that the role's policy is generated from the
# list and a call-ledger test can check every AWS call the front door makes against it:
#   read results/ and status.json; list one job's uploads (the start's photo count); sign POSTs
#   to uploads/ (S3 put plus KMS); write feedback and clicks; read the HMAC secret; keep
#   rate-limit state; send the code email as the configured sender; and write its own logs.

locals {
  # Every service that uses the service key on the front door's behalf: S3 (SSE-KMS objects it
  # reads and writes), Secrets Manager (the link key), Lambda (the function's environment, at
  # each cold start) and DynamoDB (the rate-limit table). The key is usable through them only.
  key_via_services = [for s in ["s3", "secretsmanager", "lambda", "dynamodb"] : "${s}.${local.region}.amazonaws.com"]

  grants = [
    {
      sid       = "ReadResultsAndStatus"
      actions   = ["s3:GetObject"]
      resources = ["${var.output_bucket_arn}/results/*", "${var.output_bucket_arn}/jobs/*/status.json"]
      condition = null
    },
    {
      # A start counts the job's photos with one listing of uploads/<job>/. ListBucket with a
      # prefix condition is narrower than a HEAD of each photo (which needs s3:GetObject on
      # uploads/*: every person's photo bytes): it shows names and sizes only, and the
      # condition (a job's own folder, never uploads/ itself) keeps it from enumerating jobs.
      sid       = "CountUploadsOfOneJob"
      actions   = ["s3:ListBucket"]
      resources = [var.input_bucket_arn]
      condition = { StringLike = { "s3:prefix" = ["uploads/?*/"] } }
    },
    {
      # Presigned POST policies are signed with this role: S3 checks the role's right to put.
      # The manifest the front door writes last is under the same prefix.
      sid       = "SignUploadPolicies"
      actions   = ["s3:PutObject"]
      resources = ["${var.input_bucket_arn}/uploads/*"]
      condition = null
    },
    {
      # SSE-KMS: uploads are encrypted (GenerateDataKey) and results, the secret and the
      # function's environment decrypted (Decrypt) with the service's key: only through the
      # services that hold data under it, never as a raw key operation.
      sid       = "UseServiceKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
      condition = { StringEquals = { "kms:ViaService" = local.key_via_services } }
    },
    {
      # Ratings (kept for the ratings' retention) and download clicks (one object per job,
      # file and hour; they expire with the results).
      sid       = "WriteFeedback"
      actions   = ["s3:PutObject"]
      resources = ["${var.output_bucket_arn}/feedback/*", "${var.output_bucket_arn}/clicks/*"]
      condition = null
    },
    {
      sid       = "ReadLinkKey"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.link_key.arn]
      condition = null
    },
    {
      sid       = "KeepRateLimitState"
      actions   = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
      resources = [aws_dynamodb_table.rate_limits.arn]
      condition = null
    },
    {
      # The code email (fixed text) that proves an address before anything else is sent to it.
      sid       = "SendCodeEmail"
      actions   = ["ses:SendRawEmail"]
      resources = [var.ses_identity_arn, local.ses_configuration_set_arn]
      condition = { StringEquals = { "ses:FromAddress" = var.email_sender } }
    },
    {
      sid       = "WriteOwnLogs"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = ["${aws_cloudwatch_log_group.frontdoor.arn}:*"]
      condition = null
    },
  ]

  policy = {
    Version = "2012-10-17"
    Statement = [for g in local.grants : merge(
      { Sid = g.sid, Effect = "Allow", Action = g.actions, Resource = g.resources },
      { for k, v in { Condition = g.condition } : k => v if v != null },
    )]
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
