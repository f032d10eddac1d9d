# One customer key for the buckets, the queues and the log group. Key policies are the one
# place where "Resource": "*" is required by AWS: it means "this key".

resource "aws_kms_key" "data" {
  description             = "${var.name_prefix}: photos, results, job messages and worker logs"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = jsonencode(local.key_policy)
  tags                    = local.tags
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name_prefix}-data"
  target_key_id = aws_kms_key.data.key_id
}

locals {
  key_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        # Delegates the key to IAM in this account: the task role's own policy grants use.
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # S3 encrypts event notifications with the queue's key, so it must be able to use it.
        Sid       = "InputBucketEventsToEncryptedQueue"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = {
          ArnLike      = { "aws:SourceArn" = local.input_bucket_arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        # The alarm and email-event SNS topics are encrypted with this key: CloudWatch alarms
        # and SES must be able to publish to them.
        Sid       = "AlarmsAndEmailEventsToEncryptedTopics"
        Effect    = "Allow"
        Principal = { Service = ["cloudwatch.amazonaws.com", "ses.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
      {
        # CloudWatch Logs encrypts the worker's log group (compute module) with this key;
        # scoped to this service's log groups by the encryption context.
        Sid       = "WorkerLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = [
              "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/${var.name_prefix}/*",
              # ECS task state changes, captured by EventBridge for the task-failure alarm
              "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/events/${var.name_prefix}/*",
            ]
          }
        }
      },
    ]
  }
}
