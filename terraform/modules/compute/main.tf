# Compute for the headshot service: GPU workers as an ECS service on EC2, one job per GPU,
# scaled by queue backlog through AWS's own schedulers (Application Auto Scaling for tasks,
# the ECS capacity provider's managed scaling for instances).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# The current ECS-optimized GPU AMI (NVIDIA driver and container toolkit included).
data "aws_ssm_parameter" "gpu_ami" {
  name = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  region       = data.aws_region.current.name
  cluster_name = "${var.name_prefix}-gpu"
  service_name = "${var.name_prefix}-worker"
  log_group    = "/${var.name_prefix}/worker"
  image        = coalesce(var.container_image, "${aws_ecr_repository.worker.repository_url}:${var.image_tag}")

  scratch_host_path      = "/var/lib/headshots/work"
  scratch_container_path = "/work"

  # Paths inside the read-only container: everything written goes to the two mounts.
  container_environment = merge(var.worker_settings, {
    HEADSHOTS_BASE_MODEL      = var.base_model
    HEADSHOTS_WORK_DIR        = "${local.scratch_container_path}/jobs"
    HEADSHOTS_HEALTH_FILE     = "${local.scratch_container_path}/health"
    HEADSHOTS_CLASS_CACHE_DIR = "${var.model_cache_container_path}/class-images"
    HEADSHOTS_LOG_FORMAT      = "json"
    HF_HOME                   = "${var.model_cache_container_path}/huggingface"
    # torch.compile's kernels outlive the container: a restarted worker recompiles in seconds
    TORCHINDUCTOR_CACHE_DIR = "${var.model_cache_container_path}/torchinductor"
    TMPDIR                  = "${local.scratch_container_path}/tmp"
    }, startswith(var.base_model, "/") ? {
    # Weights baked into the image: the worker never reaches the model hub (a missing file
    # fails the start loudly instead of downloading ~7 GB at every cold start).
    HF_HUB_OFFLINE = "1"
  } : {})

  tags = merge({ service = "headshots", module = "compute" }, var.tags)
}

resource "aws_ecr_repository" "worker" {
  name                 = "${var.name_prefix}-worker"
  image_tag_mutability = "IMMUTABLE"
  encryption_configuration {
    encryption_type = "KMS"
  }
  image_scanning_configuration {
    scan_on_push = true
  }
  tags = local.tags
}

resource "aws_ecr_lifecycle_policy" "worker" {
  repository = aws_ecr_repository.worker.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the 20 newest images"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 20 }
      action       = { type = "expire" }
    }]
  })
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_security_group" "worker" {
  name        = "${var.name_prefix}-worker"
  description = "GPU instances and worker tasks: no inbound, HTTPS out to AWS APIs (and the model hub when weights are not baked)"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.worker.id
  description       = "HTTPS to S3, SQS, SES, ECR, CloudWatch and ECS endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
