# The worker's task role: what the headshot worker's code may do, and nothing else. A module of
# its own so that it can be applied alone (to the offline moto endpoint, where a test worker
# assumes it) and its rendered policy read by tests (the `policy_json` output).
#
# Least privilege. The task role may: read and delete uploads/ of the input bucket, read and
# write jobs/, results/ and the class-image cache (class-images/) of the output bucket, use its
# queue (including putting a handed-back job back) and sweep its dead-letter queue, use the key,
# send email as the configured sender through its configuration set, and set its own task's
# scale-in protection. tests/terraform/test_worker_iam.py holds it to the code: a job under this
# role on an IAM-enforcing endpoint, and every call of it judged against this document.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  ecs_tasks_trust = {
    Effect    = "Allow"
    Principal = { Service = "ecs-tasks.amazonaws.com" }
    Action    = "sts:AssumeRole"
    Condition = {
      ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
      StringEquals = { "aws:SourceAccount" = local.account_id }
    }
  }
  # Tests only (see var.test_trusted_principals); absent in every real deployment.
  test_trust = [for p in var.test_trusted_principals : {
    Sid       = "TestsOnlyAssumeRole"
    Effect    = "Allow"
    Principal = { AWS = p }
    Action    = "sts:AssumeRole"
  }]
  trust_policy = {
    Version   = "2012-10-17"
    Statement = concat([local.ecs_tasks_trust], local.test_trust)
  }

  ses_configuration_set_arn = "arn:${local.partition}:ses:${local.region}:${local.account_id}:configuration-set/${var.ses_configuration_set}"

  # The worker signs the links in its emails with the front door's key: it only reads it.
  link_key_statement = var.link_secret_arn == null ? [] : [{
    Sid      = "ReadLinkKey"
    Effect   = "Allow"
    Action   = "secretsmanager:GetSecretValue"
    Resource = var.link_secret_arn
  }]

  task_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        # Removing a finished job's uploads aborts unfinished multipart uploads too (their parts
        # are never listed as objects): processor/job/uploads.py remove_uploads.
        Sid      = "ReadAndRemoveUploads"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${var.input_bucket_arn}/uploads/*"
      },
      {
        Sid      = "ListUnfinishedUploads"
        Effect   = "Allow"
        Action   = "s3:ListBucketMultipartUploads"
        Resource = var.input_bucket_arn
      },
      {
        Sid       = "ListUploads"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = var.input_bucket_arn
        Condition = { StringLike = { "s3:prefix" = ["uploads/*"] } }
      },
      {
        Sid      = "JobRecordsAndResults"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = ["${var.output_bucket_arn}/jobs/*", "${var.output_bucket_arn}/results/*"]
      },
      {
        # The class-prior image cache, shared by the fleet (processor/job/class_cache.py).
        Sid      = "ClassImageCache"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = "${var.output_bucket_arn}/class-images/*"
      },
      {
        Sid       = "ListJobRecordsResultsAndClassImages"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = var.output_bucket_arn
        Condition = { StringLike = { "s3:prefix" = ["jobs/*", "results/*", "class-images/*"] } }
      },
      {
        # SendMessage: a job handed back on SIGTERM goes back as a fresh message (docs/delivery.md).
        Sid      = "ConsumeJobQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage"]
        Resource = var.queue_arn
      },
      {
        # The dead-letter sweeper (processor/job/sweeper.py) fails dead-lettered jobs between jobs.
        Sid      = "SweepDeadLetters"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
        Resource = var.dlq_arn
      },
      {
        Sid      = "UseDataKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = var.kms_key_arn
      },
      {
        Sid       = "SendAsConfiguredSender"
        Effect    = "Allow"
        Action    = ["ses:SendEmail", "ses:SendRawEmail"]
        Resource  = [var.ses_identity_arn, local.ses_configuration_set_arn]
        Condition = { StringEquals = { "ses:FromAddress" = var.email_sender } }
      },
      {
        # The worker protects its own task from scale-in while a job runs.
        Sid      = "OwnTaskScaleInProtection"
        Effect   = "Allow"
        Action   = ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"]
        Resource = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${var.cluster_name}/*"
      },
    ], local.link_key_statement)
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-worker-task"
  description        = "What the headshot worker's code may do"
  assume_role_policy = jsonencode(local.trust_policy)
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "worker"
  role   = aws_iam_role.task.id
  policy = jsonencode(local.task_policy)
}
