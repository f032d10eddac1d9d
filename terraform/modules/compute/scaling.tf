# Tasks follow the queue: target tracking on jobs (waiting + running) per DESIRED worker, plus a
# step policy that wakes the service from zero (target tracking cannot scale a service whose
# capacity is 0). Instances follow the tasks through the capacity provider.
#
# Both policies count capacity that is desired, not capacity that is running: a GPU instance
# takes minutes to boot and pull the image, so running tasks lag the desired count through
# every cold start. Dividing by running tasks (or waking while none runs) re-adds capacity
# that is already on its way, up to max_workers for one job. bench/capacity.py simulates these
# policies as written here (it parses this file).

locals {
  queue_dimensions   = { QueueName = var.queue_name }
  service_dimensions = { ClusterName = aws_ecs_cluster.gpu.name, ServiceName = aws_ecs_service.worker.name }
}

resource "aws_appautoscaling_target" "workers" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.gpu.name}/${aws_ecs_service.worker.name}"
  min_capacity       = var.min_workers
  max_capacity       = var.max_workers
}

resource "aws_appautoscaling_policy" "backlog_per_worker" {
  name               = "${var.name_prefix}-backlog-per-worker"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.workers.service_namespace
  scalable_dimension = aws_appautoscaling_target.workers.scalable_dimension
  resource_id        = aws_appautoscaling_target.workers.resource_id

  target_tracking_scaling_policy_configuration {
    target_value = var.backlog_per_worker
    # CloudWatch datapoints arrive minutes late. Within the cooldown AWS computes new capacity
    # from the capacity before the scale-out that started it, so a cooldown longer than the
    # metric's lag never multiplies a scale-out by a desired count the metric has not seen yet.
    scale_out_cooldown = 300
    scale_in_cooldown  = 300
    customized_metric_specification {
      metrics {
        id          = "waiting"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = var.queue_name
            }
          }
        }
      }
      metrics {
        id          = "running_jobs"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = var.queue_name
            }
          }
        }
      }
      metrics {
        id          = "desired"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "DesiredTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.gpu.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }
      metrics {
        id          = "backlog_per_worker"
        label       = "jobs per desired worker"
        expression  = "(waiting + running_jobs) / IF(FILL(desired, 0) > 0, FILL(desired, 0), 1)"
        return_data = true
      }
    }
  }
}

resource "aws_appautoscaling_policy" "wake_from_zero" {
  name               = "${var.name_prefix}-wake-from-zero"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.workers.service_namespace
  scalable_dimension = aws_appautoscaling_target.workers.scalable_dimension
  resource_id        = aws_appautoscaling_target.workers.resource_id
  step_scaling_policy_configuration {
    adjustment_type = "ChangeInCapacity"
    # One +1 per cold start: a re-invocation within the warm-up adds nothing.
    cooldown                = var.worker_warmup_s
    metric_aggregation_type = "Maximum"
    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "wake_from_zero" {
  alarm_name          = "${var.name_prefix}-jobs-waiting-no-worker"
  alarm_description   = "Scaling trigger (not for operators): jobs are waiting and no worker is desired; ask for one."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.wake_from_zero.arn]

  metric_query {
    id          = "waiting"
    return_data = false
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = local.queue_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }
  metric_query {
    id          = "desired"
    return_data = false
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = local.service_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }
  metric_query {
    id          = "no_worker_for_waiting_jobs"
    expression  = "IF(waiting > 0 AND FILL(desired, 0) < 1, 1, 0)"
    label       = "jobs waiting with no worker desired"
    return_data = true
  }
  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "no_workers_backlog_growing" {
  alarm_name          = "${var.name_prefix}-no-workers-while-backlog-grows"
  alarm_description   = "For operators: the backlog has not shrunk for ${var.no_worker_alarm_minutes} minutes and no worker is running (no GPU capacity, image pull failing, or tasks crashing)."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = var.no_worker_alarm_minutes
  datapoints_to_alarm = var.no_worker_alarm_minutes
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "waiting"
    return_data = false
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = local.queue_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }
  metric_query {
    id          = "workers"
    return_data = false
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.service_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }
  metric_query {
    id          = "stalled"
    expression  = "IF(waiting > 0 AND DIFF(waiting) >= 0 AND FILL(workers, 0) < 1, 1, 0)"
    label       = "backlog not shrinking with no worker"
    return_data = true
  }
  tags = local.tags
}
