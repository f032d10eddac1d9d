# Least privilege. The task role may: read and delete uploads/ of the input bucket, read and
# write jobs/ and results/ of the output bucket, use its queue and the key, send email as the
# configured sender through its configuration set, and set its own task's scale-in protection.

locals {
  ecs_assume = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })

  ses_configuration_set_arn = "arn:${local.partition}:ses:${local.region}:${local.account_id}:configuration-set/${var.ses_configuration_set}"

  task_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadAndRemoveUploads"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:DeleteObject"]
        Resource = "${var.input_bucket_arn}/uploads/*"
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
        Sid       = "ListJobRecordsAndResults"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = var.output_bucket_arn
        Condition = { StringLike = { "s3:prefix" = ["jobs/*", "results/*"] } }
      },
      {
        Sid      = "ConsumeJobQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
        Resource = var.queue_arn
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
        Resource = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"
      },
    ]
  }

  execution_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        # AWS requires "*": GetAuthorizationToken has no resource-level permissions.
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = "ecr:GetAuthorizationToken"
        Resource = "*"
      },
      {
        Sid      = "PullWorkerImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
        Resource = aws_ecr_repository.worker.arn
      },
      {
        Sid      = "WriteWorkerLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.worker.arn}:*"
      },
    ]
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-worker-task"
  description        = "What the headshot worker's code may do"
  assume_role_policy = local.ecs_assume
  tags               = local.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "worker"
  role   = aws_iam_role.task.id
  policy = jsonencode(local.task_policy)
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-worker-execution"
  description        = "What ECS may do to start the worker: pull its image, write its logs"
  assume_role_policy = local.ecs_assume
  tags               = local.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.execution.id
  policy = jsonencode(local.execution_policy)
}

resource "aws_iam_role" "instance" {
  name        = "${var.name_prefix}-gpu-instance"
  description = "ECS container agent on the GPU instances"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = local.tags
}

# AWS's managed policy for the ECS agent (register the instance, poll for tasks, pull images).
resource "aws_iam_role_policy_attachment" "instance_ecs" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name_prefix}-gpu-instance"
  role = aws_iam_role.instance.name
  tags = local.tags
}
