# GPU capacity: an Auto Scaling group of spot and on-demand GPU instances behind an ECS
# capacity provider. ECS managed scaling sizes the group to the tasks that need placing;
# managed termination protection keeps an instance while it runs a task.

resource "aws_ecs_cluster" "gpu" {
  name = local.cluster_name
  # Container Insights publishes RunningTaskCount, which the scaling and the alarm read.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = local.tags
}

resource "aws_launch_template" "gpu" {
  name_prefix            = "${var.name_prefix}-gpu-"
  image_id               = data.aws_ssm_parameter.gpu_ami.value
  vpc_security_group_ids = [aws_security_group.worker.id]
  update_default_version = true
  ebs_optimized          = true
  user_data = base64encode(<<-EOT
    #!/bin/bash
    cat >> /etc/ecs/ecs.config <<CFG
    ECS_CLUSTER=${local.cluster_name}
    ECS_ENABLE_GPU_SUPPORT=true
    ECS_ENABLE_SPOT_INSTANCE_DRAINING=true
    ECS_CONTAINER_STOP_TIMEOUT=120s
    ECS_AWSVPC_BLOCK_IMDS=true
    CFG
    mkdir -p ${var.model_cache_host_path} ${local.scratch_host_path}/tmp
    chown -R 10001:10001 ${var.model_cache_host_path} ${local.scratch_host_path}
    EOT
  )
  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  monitoring {
    enabled = true
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }
  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name_prefix}-gpu" })
  }
  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${var.name_prefix}-gpu" })
  }
  tag_specifications {
    resource_type = "network-interface"
    tags          = local.tags
  }
  tags = local.tags
}

resource "aws_autoscaling_group" "gpu" {
  name_prefix         = "${var.name_prefix}-gpu-"
  vpc_zone_identifier = var.subnet_ids
  min_size            = 0
  max_size            = var.max_workers
  # Required by managed termination protection: ECS decides which instances may go.
  protect_from_scale_in = true
  capacity_rebalance    = true

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = var.on_demand_base_capacity
      on_demand_percentage_above_base_capacity = var.on_demand_percentage_above_base
      spot_allocation_strategy                 = "price-capacity-optimized"
    }
    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.gpu.id
        version            = aws_launch_template.gpu.latest_version
      }
      dynamic "override" {
        for_each = var.instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }
  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # The capacity provider owns the desired capacity.
    ignore_changes = [desired_capacity]
  }
}

resource "aws_ecs_capacity_provider" "gpu" {
  name = "${var.name_prefix}-gpu"
  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.gpu.arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"
    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = 100
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = var.max_workers
      instance_warmup_period    = var.worker_warmup_s
    }
  }
  tags = local.tags
}

resource "aws_ecs_cluster_capacity_providers" "gpu" {
  cluster_name       = aws_ecs_cluster.gpu.name
  capacity_providers = [aws_ecs_capacity_provider.gpu.name]
  default_capacity_provider_strategy {
    capacity_provider = aws_ecs_capacity_provider.gpu.name
    weight            = 1
  }
}
