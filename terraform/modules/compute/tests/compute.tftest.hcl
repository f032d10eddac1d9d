# Pins the compute facts, offline (mock provider: nothing is created).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  # The provider validates ARNs even when mocked.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/mock" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/mock", id = "arn:aws:ecs:us-east-1:123456789012:cluster/mock" }
  }
  mock_resource "aws_autoscaling_group" {
    defaults = { arn = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0:autoScalingGroupName/mock" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:us-east-1:123456789012:repository/mock", repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/mock" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1" }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0:resource/ecs/service/mock:policyName/mock" }
  }
}

variables {
  vpc_id                = "vpc-0abc"
  subnet_ids            = ["subnet-0a", "subnet-0b"]
  input_bucket_arn      = "arn:aws:s3:::headshots-input-123456789012"
  output_bucket_arn     = "arn:aws:s3:::headshots-output-123456789012"
  queue_arn             = "arn:aws:sqs:us-east-1:123456789012:headshots-jobs"
  dlq_arn               = "arn:aws:sqs:us-east-1:123456789012:headshots-jobs-dlq"
  queue_name            = "headshots-jobs"
  kms_key_arn           = "arn:aws:kms:us-east-1:123456789012:key/0000"
  ses_identity_arn      = "arn:aws:ses:us-east-1:123456789012:identity/headshots@example.com"
  ses_configuration_set = "headshots-mail"
  email_sender          = "headshots@example.com"
  worker_settings = {
    HEADSHOTS_INPUT_BUCKET  = "headshots-input-123456789012"
    HEADSHOTS_OUTPUT_BUCKET = "headshots-output-123456789012"
    HEADSHOTS_QUEUE_URL     = "https://sqs.us-east-1.amazonaws.com/123456789012/headshots-jobs"
  }
}

run "worker_container_contract" {
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].stopTimeout == 120
    error_message = "SIGTERM grace (stop timeout) is 120 s"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].resourceRequirements == [{ type = "GPU", value = "1" }]
    error_message = "one GPU per worker task"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].healthCheck.command == ["CMD", "headshots", "worker", "--check-health"]
    error_message = "the health check is the worker's own"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].logConfiguration.logDriver == "awslogs" && aws_cloudwatch_log_group.worker.kms_key_id == var.kms_key_arn
    error_message = "logs go to an encrypted CloudWatch log group"
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment, { name = "HEADSHOTS_QUEUE_URL", value = "https://sqs.us-east-1.amazonaws.com/123456789012/headshots-jobs" })
    error_message = "the container's environment carries the worker settings"
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment, { name = "TORCHINDUCTOR_CACHE_DIR", value = "/cache/torchinductor" })
    error_message = "torch.compile's kernel cache lives on the instance's model-cache volume, not in the container"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].readonlyRootFilesystem && jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].user == "10001:10001"
    error_message = "non-root user, read-only root filesystem"
  }
}

run "capacity_provider_scales_gpu_instances_with_termination_protection" {
  assert {
    condition     = aws_ecs_capacity_provider.gpu.auto_scaling_group_provider[0].managed_termination_protection == "ENABLED" && aws_autoscaling_group.gpu.protect_from_scale_in
    error_message = "managed termination protection (needs protect_from_scale_in on the group)"
  }
  assert {
    condition     = aws_ecs_capacity_provider.gpu.auto_scaling_group_provider[0].managed_scaling[0].status == "ENABLED"
    error_message = "managed scaling sizes the instance group"
  }
  assert {
    condition     = aws_autoscaling_group.gpu.mixed_instances_policy[0].instances_distribution[0].on_demand_percentage_above_base_capacity == 25 && length(aws_autoscaling_group.gpu.mixed_instances_policy[0].launch_template[0].override) == 3
    error_message = "a spot/on-demand mix over the GPU instance types"
  }
  assert {
    condition     = aws_launch_template.gpu.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 only"
  }
}

run "service_scales_on_backlog_per_worker_from_zero" {
  assert {
    condition     = aws_appautoscaling_target.workers.min_capacity == 0 && aws_appautoscaling_target.workers.max_capacity == 4
    error_message = "workers scale between min_workers (0) and max_workers"
  }
  assert {
    condition     = aws_appautoscaling_policy.backlog_per_worker.target_tracking_scaling_policy_configuration[0].target_value == 1
    error_message = "target: one job per worker"
  }
  assert {
    condition     = length([for m in aws_appautoscaling_policy.backlog_per_worker.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : m if m.return_data]) == 1
    error_message = "the target tracks one metric-math expression"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.wake_from_zero.alarm_actions == toset([aws_appautoscaling_policy.wake_from_zero.arn])
    error_message = "waiting jobs with no worker start one (target tracking cannot leave zero)"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.no_workers_backlog_growing.evaluation_periods == 15
    error_message = "operators hear about a growing backlog with no worker"
  }
}

# Running tasks lag the desired count by a whole cold start (boot + image pull, minutes), so
# neither policy may count them: dividing by running tasks, or waking while none runs, re-adds
# capacity already on its way (issue 13). bench/capacity.py simulates the policies as written.
run "scaling_counts_desired_capacity_and_waits_a_real_warmup" {
  assert {
    condition     = [for m in aws_appautoscaling_policy.backlog_per_worker.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : m.metric_stat[0].metric[0].metric_name if length(m.metric_stat) > 0 && try(m.metric_stat[0].metric[0].namespace, "") == "ECS/ContainerInsights"] == ["DesiredTaskCount"]
    error_message = "target tracking divides the backlog by the desired task count, never the running one"
  }
  assert {
    condition     = strcontains(one([for m in aws_appautoscaling_policy.backlog_per_worker.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : m.expression if m.return_data]), "FILL(desired, 0)")
    error_message = "the tracked expression's denominator is the desired count"
  }
  assert {
    condition     = [for q in aws_cloudwatch_metric_alarm.wake_from_zero.metric_query : q.metric[0].metric_name if length(q.metric) > 0 && try(q.metric[0].namespace, "") == "ECS/ContainerInsights"] == ["DesiredTaskCount"] && strcontains(one([for q in aws_cloudwatch_metric_alarm.wake_from_zero.metric_query : q.expression if q.return_data]), "FILL(desired, 0) < 1")
    error_message = "the wake alarm fires only while no worker is desired, not while none is running yet"
  }
  assert {
    condition     = aws_appautoscaling_policy.backlog_per_worker.target_tracking_scaling_policy_configuration[0].scale_out_cooldown >= 180
    error_message = "the scale-out cooldown outlasts CloudWatch's datapoint lag, or scale-outs compound on a desired count the metric has not seen"
  }
  assert {
    condition     = aws_appautoscaling_policy.wake_from_zero.step_scaling_policy_configuration[0].cooldown == 600 && aws_appautoscaling_policy.wake_from_zero.step_scaling_policy_configuration[0].adjustment_type == "ChangeInCapacity" && one(aws_appautoscaling_policy.wake_from_zero.step_scaling_policy_configuration[0].step_adjustment).scaling_adjustment == 1
    error_message = "one +1 per cold start: the wake step's cooldown is the warm-up (10 min by default)"
  }
  assert {
    condition     = aws_ecs_capacity_provider.gpu.auto_scaling_group_provider[0].managed_scaling[0].instance_warmup_period == 600
    error_message = "the capacity provider waits the same warm-up for a new instance"
  }
  assert {
    condition     = [for q in aws_cloudwatch_metric_alarm.no_workers_backlog_growing.metric_query : q.metric[0].metric_name if length(q.metric) > 0 && try(q.metric[0].namespace, "") == "ECS/ContainerInsights"] == ["RunningTaskCount"]
    error_message = "the operators' alarm still asks whether a worker actually runs"
  }
}

run "warmup_drives_the_wake_cooldown_and_large_fleets_are_accepted" {
  command = plan
  variables {
    worker_warmup_s = 420
    max_workers     = 240
  }
  assert {
    condition     = aws_appautoscaling_policy.wake_from_zero.step_scaling_policy_configuration[0].cooldown == 420 && aws_ecs_capacity_provider.gpu.auto_scaling_group_provider[0].managed_scaling[0].instance_warmup_period == 420
    error_message = "worker_warmup_s is the wake cooldown and the instance warm-up"
  }
  assert {
    condition     = aws_appautoscaling_target.workers.max_capacity == 240 && aws_autoscaling_group.gpu.max_size == 240
    error_message = "1000 jobs/hour needs ~225 workers: max_workers above the old cap of 100 is accepted"
  }
}

run "rejects_an_operator_alarm_shorter_than_a_cold_start" {
  command = plan
  variables {
    worker_warmup_s         = 900
    no_worker_alarm_minutes = 10
  }
  expect_failures = [var.no_worker_alarm_minutes]
}

run "task_runs_under_the_worker_iam_role_and_execution_is_least_privilege" {
  assert {
    condition     = aws_ecs_task_definition.worker.task_role_arn == module.worker_iam.role_arn && output.task_role_arn == module.worker_iam.role_arn
    error_message = "the worker task runs under modules/worker_iam's role"
  }
  assert {
    condition     = output.task_policy_json == module.worker_iam.policy_json && one([for s in jsondecode(output.task_policy_json).Statement : s.Resource if s.Sid == "OwnTaskScaleInProtection"]) == "arn:aws:ecs:us-east-1:123456789012:task/headshots-gpu/*"
    error_message = "the role's policy is scoped to this module's cluster"
  }
  assert {
    condition     = length(jsondecode(module.worker_iam.trust_policy_json).Statement) == 1
    error_message = "compute never adds test principals: production trust is ECS tasks only"
  }
  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Sid if contains(flatten([s.Resource]), "*")] == ["EcrLogin"]
    error_message = "the only '*' resource is ecr:GetAuthorizationToken (AWS requires it)"
  }
}

run "tags_reach_instances_and_volumes" {
  command = plan
  variables {
    tags = { environment = "test", owner = "ml" }
  }
  assert {
    condition     = toset([for t in aws_launch_template.gpu.tag_specifications : t.resource_type]) == toset(["instance", "volume", "network-interface"])
    error_message = "the launch template tags instances, their EBS volumes and their network interfaces"
  }
  assert {
    condition     = alltrue([for t in aws_launch_template.gpu.tag_specifications : t.tags["environment"] == "test" && t.tags["owner"] == "ml" && t.tags["service"] == "headshots"])
    error_message = "every tag specification carries the module's tags"
  }
  assert {
    condition     = length([for t in aws_autoscaling_group.gpu.tag : t if t.key == "environment" && t.value == "test" && t.propagate_at_launch]) == 1
    error_message = "the Auto Scaling group propagates the tags at launch"
  }
}

run "alarms_from_metric_filters_on_structured_logs" {
  variables {
    alarm_actions = ["arn:aws:sns:us-east-1:123456789012:headshots-alarms"]
  }
  assert {
    condition     = aws_cloudwatch_log_metric_filter.worker["JobsEnded"].pattern == "{ $.event = \"job_ended\" }" && aws_cloudwatch_log_metric_filter.worker["JobsFailed"].pattern == "{ $.event = \"job_ended\" && $.state = \"failed\" }" && aws_cloudwatch_log_metric_filter.worker["EmailUnknown"].pattern == "{ $.event = \"email_unknown\" }" && aws_cloudwatch_log_metric_filter.worker["EmailMissing"].pattern == "{ $.event = \"email_missing\" }"
    error_message = "metric filters read the worker's job_ended, email_unknown and email_missing log events"
  }
  assert {
    condition     = alltrue([for f in aws_cloudwatch_log_metric_filter.worker : f.log_group_name == aws_cloudwatch_log_group.worker.name])
    error_message = "on the worker's log group"
  }
  assert {
    condition     = one([for q in aws_cloudwatch_metric_alarm.job_failure_rate.metric_query : q.expression if q.return_data]) == "IF(FILL(ended, 0) >= 5, FILL(failed, 0) / ended, 0)" && aws_cloudwatch_metric_alarm.job_failure_rate.threshold == 0.2
    error_message = "failure rate = failed / ended, once enough jobs ended"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.task_stopped.event_pattern).detail.lastStatus == ["STOPPED"] && jsondecode(aws_cloudwatch_event_rule.task_stopped.event_pattern).detail.clusterArn == [aws_ecs_cluster.gpu.arn] && aws_cloudwatch_event_target.task_stopped.arn == aws_cloudwatch_log_group.task_events.arn
    error_message = "ECS task stops of this cluster are captured into a log group"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_log_metric_filter.task_failures.pattern, "TaskFailedToStart") && strcontains(aws_cloudwatch_log_metric_filter.task_failures.pattern, "exitCode != 0") && aws_cloudwatch_log_metric_filter.task_failures.log_group_name == aws_cloudwatch_log_group.task_events.name
    error_message = "task failures: failed to start, or exited non-zero"
  }
  assert {
    condition     = alltrue([for a in [aws_cloudwatch_metric_alarm.task_failures, aws_cloudwatch_metric_alarm.email_unknown, aws_cloudwatch_metric_alarm.email_missing, aws_cloudwatch_metric_alarm.job_failure_rate, aws_cloudwatch_metric_alarm.no_workers_backlog_growing] : a.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:headshots-alarms"])])
    error_message = "every operator alarm notifies the alarm actions"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.email_unknown.threshold == 1 && aws_cloudwatch_metric_alarm.email_unknown.metric_name == "EmailUnknown" && aws_cloudwatch_log_group.task_events.kms_key_id == var.kms_key_arn
    error_message = "one unknown email is enough to alarm; the task-event log is encrypted"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.email_missing.threshold == 1 && aws_cloudwatch_metric_alarm.email_missing.metric_name == "EmailMissing" && aws_cloudwatch_metric_alarm.email_missing.namespace == aws_cloudwatch_log_metric_filter.worker["EmailMissing"].metric_transformation[0].namespace
    error_message = "one job ended without its email is enough to alarm, on the metric its filter writes"
  }
}

run "rejects_arm_gpu_instance_types" {
  command = plan
  variables {
    instance_types = ["g6e.xlarge", "g5g.xlarge"]
  }
  expect_failures = [var.instance_types]
}

run "sdxl_weights_come_from_the_image_not_the_hub" {
  command = plan
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment, { name = "HEADSHOTS_BASE_MODEL", value = "/opt/headshots/models/base" }) && contains(jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment, { name = "HF_HUB_OFFLINE", value = "1" })
    error_message = "by default the worker loads the weights baked into the image and never reaches the hub"
  }
}

run "a_hub_id_base_model_may_download" {
  command = plan
  variables {
    base_model = "stabilityai/stable-diffusion-xl-base-1.0"
  }
  assert {
    condition     = !contains([for e in jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].environment : e.name], "HF_HUB_OFFLINE")
    error_message = "a hub id is allowed (downloaded into the instance cache) and the hub stays reachable"
  }
}

run "rejects_max_below_min" {
  command = plan
  variables {
    min_workers = 3
    max_workers = 2
  }
  expect_failures = [var.max_workers]
}

run "rejects_non_gpu_instance_types" {
  command = plan
  variables {
    instance_types = ["m5.large"]
  }
  expect_failures = [var.instance_types]
}
