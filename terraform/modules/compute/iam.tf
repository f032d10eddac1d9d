# Least privilege. The worker's task role lives in modules/worker_iam; here: the execution role
# (ECS pulls the image and writes logs) and the GPU instances' role (the ECS agent).

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

# The task role (what the worker's code may do) is a module of its own, so that it can be
# applied alone to the offline endpoint and its rendered policy tested (modules/worker_iam).
module "worker_iam" {
  source = "../worker_iam"

  name_prefix           = var.name_prefix
  cluster_name          = local.cluster_name
  input_bucket_arn      = var.input_bucket_arn
  output_bucket_arn     = var.output_bucket_arn
  queue_arn             = var.queue_arn
  dlq_arn               = var.dlq_arn
  link_secret_arn       = var.link_secret_arn
  kms_key_arn           = var.kms_key_arn
  ses_identity_arn      = var.ses_identity_arn
  ses_configuration_set = var.ses_configuration_set
  email_sender          = var.email_sender
  tags                  = local.tags
}

# State written before the split keeps its role and policy.
moved {
  from = aws_iam_role.task
  to   = module.worker_iam.aws_iam_role.task
}

moved {
  from = aws_iam_role_policy.task
  to   = module.worker_iam.aws_iam_role_policy.task
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
