# The worker: one container per GPU, read-only root filesystem with the model cache and a
# scratch folder mounted from the instance, 120 s to finish after SIGTERM.

resource "aws_ecs_task_definition" "worker" {
  family                   = local.service_name
  requires_compatibilities = ["EC2"]
  network_mode             = "awsvpc"
  task_role_arn            = module.worker_iam.role_arn
  execution_role_arn       = aws_iam_role.execution.arn

  volume {
    name      = "model-cache"
    host_path = var.model_cache_host_path
  }
  volume {
    name      = "scratch"
    host_path = local.scratch_host_path
  }

  container_definitions = jsonencode([{
    name                   = "worker"
    image                  = local.image
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    memoryReservation      = var.task_memory_mib
    resourceRequirements   = [{ type = "GPU", value = "1" }]
    # SIGTERM -> the worker checkpoints and releases its message; ECS waits this long.
    stopTimeout     = 120
    linuxParameters = { initProcessEnabled = true }
    environment     = [for k in sort(keys(local.container_environment)) : { name = k, value = local.container_environment[k] }]
    mountPoints = [
      { sourceVolume = "model-cache", containerPath = var.model_cache_container_path, readOnly = false },
      { sourceVolume = "scratch", containerPath = local.scratch_container_path, readOnly = false },
    ]
    healthCheck = {
      command     = ["CMD", "headshots", "worker", "--check-health"]
      interval    = 30
      timeout     = 10
      retries     = 3
      startPeriod = 300
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  }])
  tags = local.tags
}

resource "aws_ecs_service" "worker" {
  name            = local.service_name
  cluster         = aws_ecs_cluster.gpu.id
  task_definition = aws_ecs_task_definition.worker.arn
  desired_count   = var.min_workers
  # GPUs are scarce: replace tasks in place; running jobs finish under scale-in protection.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  capacity_provider_strategy {
    capacity_provider = aws_ecs_capacity_provider.gpu.name
    weight            = 1
  }
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  lifecycle {
    # Application Auto Scaling owns the desired count.
    ignore_changes = [desired_count]
  }
  depends_on = [aws_ecs_cluster_capacity_providers.gpu, module.worker_iam]
  tags       = local.tags
}
