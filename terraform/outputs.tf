# Outputs named HEADSHOTS_* are exactly the worker's settings (processor/settings.py); the
# container gets the same values through the task definition's environment.

output "HEADSHOTS_INPUT_BUCKET" {
  description = "Worker setting HEADSHOTS_INPUT_BUCKET."
  value       = module.storage_messaging.HEADSHOTS_INPUT_BUCKET
}

output "HEADSHOTS_OUTPUT_BUCKET" {
  description = "Worker setting HEADSHOTS_OUTPUT_BUCKET."
  value       = module.storage_messaging.HEADSHOTS_OUTPUT_BUCKET
}

output "HEADSHOTS_QUEUE_URL" {
  description = "Worker setting HEADSHOTS_QUEUE_URL."
  value       = module.storage_messaging.HEADSHOTS_QUEUE_URL
}

output "HEADSHOTS_DLQ_URL" {
  description = "Worker setting HEADSHOTS_DLQ_URL."
  value       = module.storage_messaging.HEADSHOTS_DLQ_URL
}

output "HEADSHOTS_AWS_REGION" {
  description = "Worker setting HEADSHOTS_AWS_REGION."
  value       = module.storage_messaging.HEADSHOTS_AWS_REGION
}

output "HEADSHOTS_VISIBILITY_TIMEOUT_S" {
  description = "Worker setting HEADSHOTS_VISIBILITY_TIMEOUT_S."
  value       = module.storage_messaging.HEADSHOTS_VISIBILITY_TIMEOUT_S
}

output "HEADSHOTS_HEARTBEAT_INTERVAL_S" {
  description = "Worker setting HEADSHOTS_HEARTBEAT_INTERVAL_S."
  value       = module.storage_messaging.HEADSHOTS_HEARTBEAT_INTERVAL_S
}

output "HEADSHOTS_OWNER_STALE_AFTER_S" {
  description = "Worker setting HEADSHOTS_OWNER_STALE_AFTER_S."
  value       = module.storage_messaging.HEADSHOTS_OWNER_STALE_AFTER_S
}

output "HEADSHOTS_MAX_JOB_DURATION_S" {
  description = "Worker setting HEADSHOTS_MAX_JOB_DURATION_S."
  value       = module.storage_messaging.HEADSHOTS_MAX_JOB_DURATION_S
}

output "HEADSHOTS_MAX_RECEIVE_COUNT" {
  description = "Worker setting HEADSHOTS_MAX_RECEIVE_COUNT."
  value       = module.storage_messaging.HEADSHOTS_MAX_RECEIVE_COUNT
}

output "HEADSHOTS_EMAIL_BACKEND" {
  description = "Worker setting HEADSHOTS_EMAIL_BACKEND."
  value       = module.storage_messaging.HEADSHOTS_EMAIL_BACKEND
}

output "HEADSHOTS_EMAIL_SENDER" {
  description = "Worker setting HEADSHOTS_EMAIL_SENDER."
  value       = module.storage_messaging.HEADSHOTS_EMAIL_SENDER
}

output "HEADSHOTS_BASE_MODEL" {
  description = "Worker setting HEADSHOTS_BASE_MODEL."
  value       = var.base_model
}

output "HEADSHOTS_FRONTDOOR_URL" {
  description = "Worker setting HEADSHOTS_FRONTDOOR_URL: where the emailed links point."
  value       = module.frontdoor.HEADSHOTS_FRONTDOOR_URL
}

output "HEADSHOTS_LINK_SECRET_ID" {
  description = "Worker setting HEADSHOTS_LINK_SECRET_ID: the link key's secret."
  value       = module.frontdoor.HEADSHOTS_LINK_SECRET_ID
}

output "HEADSHOTS_LINK_TTL_S" {
  description = "Worker setting HEADSHOTS_LINK_TTL_S: the links' lifetime, the results retention."
  value       = module.frontdoor.HEADSHOTS_LINK_TTL_S
}

output "frontdoor_url" {
  description = "The upload page (the front door's function URL)."
  value       = module.frontdoor.url
}

output "frontdoor_invoke_permission_command" {
  description = "Run once after the first apply: the function URL's lambda:InvokeFunction permission (see the module)."
  value       = module.frontdoor.invoke_permission_command
}

output "ecr_repository_url" {
  description = "Push the worker image here, tagged image_tag."
  value       = module.compute.ecr_repository_url
}

output "cluster_name" {
  description = "ECS cluster of the GPU workers."
  value       = module.compute.cluster_name
}

output "service_name" {
  description = "ECS service of the workers."
  value       = module.compute.service_name
}

output "log_group_name" {
  description = "CloudWatch log group of the workers."
  value       = module.compute.log_group_name
}

output "ses_dkim_tokens" {
  description = "DKIM CNAME tokens to publish when ses_domain is set."
  value       = module.storage_messaging.ses_dkim_tokens
}

output "alarm_topic_arn" {
  description = "SNS topic every operator alarm notifies; subscribe on-call endpoints to it."
  value       = module.storage_messaging.alarm_topic_arn
}

output "email_events_topic_arn" {
  description = "SNS topic receiving SES bounce, complaint and reject events."
  value       = module.storage_messaging.email_events_topic_arn
}
