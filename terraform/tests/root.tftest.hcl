# The root wires the two modules: the outputs are the worker's settings, and the container
# runs with exactly the same values. Offline (mock provider).

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
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mock", id = "https://sqs.us-east-1.amazonaws.com/123456789012/mock" }
  }
  mock_resource "aws_sesv2_email_identity" {
    defaults = { arn = "arn:aws:ses:us-east-1:123456789012:identity/mock" }
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
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots-test/frontdoor/link-key-AbCdEf", id = "arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots-test/frontdoor/link-key-AbCdEf" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:mock" }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://abc123.lambda-url.us-east-1.on.aws/" }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = { random_password = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0:resource/ecs/service/mock:policyName/mock" }
  }
}

variables {
  frontdoor_package = "main.tf" # any existing file stands in for the zip: nothing is uploaded
  email_sender      = "headshots@example.com"
  vpc_id            = "vpc-0abc"
  subnet_ids        = ["subnet-0a"]
  environment       = "test"
}

run "outputs_are_the_worker_settings_and_the_container_gets_them" {
  assert {
    condition     = output.HEADSHOTS_INPUT_BUCKET == "headshots-test-input-123456789012" && output.HEADSHOTS_OUTPUT_BUCKET == "headshots-test-output-123456789012"
    error_message = "bucket outputs"
  }
  assert {
    condition     = output.HEADSHOTS_QUEUE_URL != "" && output.HEADSHOTS_DLQ_URL != "" && output.HEADSHOTS_AWS_REGION == "us-east-1"
    error_message = "queue and region outputs"
  }
  assert {
    condition     = output.HEADSHOTS_EMAIL_BACKEND == "ses" && output.HEADSHOTS_EMAIL_SENDER == "headshots@example.com" && output.HEADSHOTS_MAX_RECEIVE_COUNT == "3" && output.HEADSHOTS_VISIBILITY_TIMEOUT_S == "120"
    error_message = "email and queue-behaviour outputs"
  }
  assert {
    condition     = output.HEADSHOTS_HEARTBEAT_INTERVAL_S == "30" && output.HEADSHOTS_OWNER_STALE_AFTER_S == "60" && output.HEADSHOTS_MAX_JOB_DURATION_S == "10800"
    error_message = "lease outputs: H=30, S=V-2H=60, max job duration 3 h"
  }
  assert {
    condition = alltrue([for k, v in {
      HEADSHOTS_INPUT_BUCKET  = output.HEADSHOTS_INPUT_BUCKET
      HEADSHOTS_OUTPUT_BUCKET = output.HEADSHOTS_OUTPUT_BUCKET
      HEADSHOTS_QUEUE_URL     = output.HEADSHOTS_QUEUE_URL
      HEADSHOTS_DLQ_URL       = output.HEADSHOTS_DLQ_URL
      HEADSHOTS_EMAIL_SENDER  = output.HEADSHOTS_EMAIL_SENDER
      HEADSHOTS_BASE_MODEL    = output.HEADSHOTS_BASE_MODEL
      # the lease rule's settings reach the container too
      HEADSHOTS_VISIBILITY_TIMEOUT_S = output.HEADSHOTS_VISIBILITY_TIMEOUT_S
      HEADSHOTS_HEARTBEAT_INTERVAL_S = output.HEADSHOTS_HEARTBEAT_INTERVAL_S
      HEADSHOTS_OWNER_STALE_AFTER_S  = output.HEADSHOTS_OWNER_STALE_AFTER_S
      HEADSHOTS_MAX_JOB_DURATION_S   = output.HEADSHOTS_MAX_JOB_DURATION_S
    } : module.compute.container_environment[k] == v])
    error_message = "the worker container's environment equals the outputs"
  }
}

run "the_front_door_is_wired_to_the_workers_links_and_the_uploads_cors" {
  assert {
    condition = alltrue([for k in ["HEADSHOTS_FRONTDOOR_URL", "HEADSHOTS_LINK_SECRET_ID", "HEADSHOTS_LINK_TTL_S"] :
    module.compute.container_environment[k] == module.frontdoor.worker_settings[k]])
    error_message = "the worker signs links with the front door's key and points them at it"
  }
  assert {
    condition     = output.HEADSHOTS_FRONTDOOR_URL == "https://abc123.lambda-url.us-east-1.on.aws" && output.HEADSHOTS_LINK_TTL_S == tostring(7 * 86400)
    error_message = "links point at the function URL and live as long as results are kept (results_retention_days)"
  }
  assert {
    condition     = length(module.storage_messaging.cors_allowed_origins) == 0 && module.frontdoor.upload_origins == tolist(["https://abc123.lambda-url.us-east-1.on.aws"])
    error_message = "the input bucket's CORS is open to the front door's origin only (one rule, the front door's)"
  }
  assert {
    condition     = module.frontdoor.lambda_environment["HEADSHOTS_EMAIL_SENDER"] == var.email_sender && module.frontdoor.lambda_environment["HEADSHOTS_FRONTDOOR_TRUSTED_PROXY"] == "none"
    error_message = "the code email goes out as the service's sender; no proxy header is trusted by default"
  }
}

run "rejects_bad_region" {
  command = plan
  variables {
    region = "Mars"
  }
  expect_failures = [var.region]
}
