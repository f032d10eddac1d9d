# Operator alarms from one mechanism: CloudWatch Logs metric filters on structured JSON logs.
# - The worker logs {"event": "job_ended", "state": "delivered"|"rejected"|"failed", ...} at every
#   terminal state, {"event": "email_unknown", ...} when an email's outcome is ambiguous, and
#   {"event": "email_missing", ...} when a job ended with an address and no email sent (its
#   email certainly failed, even after the retry window; docs/delivery.md).
# - A task that dies cannot log its own death, so ECS's "Task State Change" events are captured
#   into a log group of their own by EventBridge, and filtered the same way.
# Failure rate = failed / ended, by metric math. Every alarm notifies var.alarm_actions.

locals {
  metric_namespace = "Headshots/${var.name_prefix}"
  worker_log_metrics = {
    JobsEnded    = "{ $.event = \"job_ended\" }"
    JobsFailed   = "{ $.event = \"job_ended\" && $.state = \"failed\" }"
    EmailUnknown = "{ $.event = \"email_unknown\" }"
    EmailMissing = "{ $.event = \"email_missing\" }"
  }
  # Stopped tasks that failed: could not start, or the worker exited non-zero (a crash, OOM).
  # Scale-in, deployments and spot interruptions stop tasks too; those are not failures.
  task_failure_pattern = "{ $.detail.lastStatus = \"STOPPED\" && ($.detail.stopCode = \"TaskFailedToStart\" || ($.detail.stopCode = \"EssentialContainerExited\" && $.detail.containers[0].exitCode != 0)) }"
}

resource "aws_cloudwatch_log_metric_filter" "worker" {
  for_each       = local.worker_log_metrics
  name           = "${var.name_prefix}-${each.key}"
  log_group_name = aws_cloudwatch_log_group.worker.name
  pattern        = each.value
  metric_transformation {
    name          = each.key
    namespace     = local.metric_namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_log_group" "task_events" {
  name              = "/aws/events/${var.name_prefix}/ecs-tasks"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_event_rule" "task_stopped" {
  name        = "${var.name_prefix}-worker-task-stopped"
  description = "Worker tasks that stopped, into a log group the task-failure metric filter reads"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [aws_ecs_cluster.gpu.arn]
      lastStatus = ["STOPPED"]
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "task_stopped" {
  rule = aws_cloudwatch_event_rule.task_stopped.name
  arn  = aws_cloudwatch_log_group.task_events.arn
}

# EventBridge writes to the log group under this resource policy (only from this rule).
resource "aws_cloudwatch_log_resource_policy" "task_events" {
  policy_name = "${var.name_prefix}-ecs-task-events"
  policy_document = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeWritesTaskEvents"
      Effect    = "Allow"
      Principal = { Service = ["events.amazonaws.com", "delivery.logs.amazonaws.com"] }
      Action    = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource  = "${aws_cloudwatch_log_group.task_events.arn}:*"
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.task_stopped.arn } }
    }]
  })
}

resource "aws_cloudwatch_log_metric_filter" "task_failures" {
  name           = "${var.name_prefix}-TaskFailures"
  log_group_name = aws_cloudwatch_log_group.task_events.name
  pattern        = local.task_failure_pattern
  metric_transformation {
    name          = "TaskFailures"
    namespace     = local.metric_namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "task_failures" {
  alarm_name          = "${var.name_prefix}-worker-task-failures"
  alarm_description   = "Worker tasks failed to start or exited non-zero (crash, OOM, GPU fault): read the stopped reason in ${aws_cloudwatch_log_group.task_events.name}."
  namespace           = local.metric_namespace
  metric_name         = "TaskFailures"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.task_failure_alarm_count
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
  depends_on          = [aws_cloudwatch_log_metric_filter.task_failures]
}

resource "aws_cloudwatch_metric_alarm" "email_unknown" {
  alarm_name          = "${var.name_prefix}-email-outcome-unknown"
  alarm_description   = "An email's send outcome is unknown (SES timed out after the request went out): the job records email: unknown; check SES and tell the person if needed."
  namespace           = local.metric_namespace
  metric_name         = "EmailUnknown"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
  depends_on          = [aws_cloudwatch_log_metric_filter.worker]
}

resource "aws_cloudwatch_metric_alarm" "email_missing" {
  alarm_name          = "${var.name_prefix}-email-missing"
  alarm_description   = "A job ended with an address and no email: the send certainly failed for the whole retry window (provider down, throttled, the address refused). The job's status.json says email: failed; tell the person another way."
  namespace           = local.metric_namespace
  metric_name         = "EmailMissing"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = local.tags
  depends_on          = [aws_cloudwatch_log_metric_filter.worker]
}

resource "aws_cloudwatch_metric_alarm" "job_failure_rate" {
  alarm_name          = "${var.name_prefix}-job-failure-rate"
  alarm_description   = "More than ${var.job_failure_rate_threshold * 100}% of the jobs that ended in the last hour failed (at least ${var.job_failure_rate_min_jobs} ended)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.job_failure_rate_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "failed"
    return_data = false
    metric {
      namespace   = local.metric_namespace
      metric_name = "JobsFailed"
      stat        = "Sum"
      period      = 3600
    }
  }
  metric_query {
    id          = "ended"
    return_data = false
    metric {
      namespace   = local.metric_namespace
      metric_name = "JobsEnded"
      stat        = "Sum"
      period      = 3600
    }
  }
  metric_query {
    id          = "failure_rate"
    expression  = "IF(FILL(ended, 0) >= ${var.job_failure_rate_min_jobs}, FILL(failed, 0) / ended, 0)"
    label       = "failed / ended jobs"
    return_data = true
  }
  tags       = local.tags
  depends_on = [aws_cloudwatch_log_metric_filter.worker]
}
