# Outputs named HEADSHOTS_* are exactly the worker's settings (processor/settings.py):
# `terraform output -json` configures a worker. The others wire the compute module.

locals {
  worker_settings = {
    HEADSHOTS_INPUT_BUCKET         = aws_s3_bucket.data["input"].bucket
    HEADSHOTS_OUTPUT_BUCKET        = aws_s3_bucket.data["output"].bucket
    HEADSHOTS_QUEUE_URL            = aws_sqs_queue.jobs.id
    HEADSHOTS_DLQ_URL              = aws_sqs_queue.dlq.id
    HEADSHOTS_AWS_REGION           = local.region
    HEADSHOTS_VISIBILITY_TIMEOUT_S = tostring(aws_sqs_queue.jobs.visibility_timeout_seconds)
    HEADSHOTS_HEARTBEAT_INTERVAL_S = tostring(var.heartbeat_interval_s)
    HEADSHOTS_OWNER_STALE_AFTER_S  = tostring(local.owner_stale_after_s)
    HEADSHOTS_MAX_JOB_DURATION_S   = tostring(var.max_job_duration_s)
    HEADSHOTS_MAX_RECEIVE_COUNT    = tostring(var.max_receive_count)
    HEADSHOTS_EMAIL_BACKEND        = "ses"
    HEADSHOTS_EMAIL_SENDER         = var.email_sender
  }
}

output "HEADSHOTS_INPUT_BUCKET" {
  description = "Bucket holding uploads/<job>/."
  value       = local.worker_settings["HEADSHOTS_INPUT_BUCKET"]
}

output "HEADSHOTS_OUTPUT_BUCKET" {
  description = "Bucket holding jobs/<job>/ and results/<job>/."
  value       = local.worker_settings["HEADSHOTS_OUTPUT_BUCKET"]
}

output "HEADSHOTS_QUEUE_URL" {
  description = "Job queue URL."
  value       = local.worker_settings["HEADSHOTS_QUEUE_URL"]
}

output "HEADSHOTS_DLQ_URL" {
  description = "Dead-letter queue URL."
  value       = local.worker_settings["HEADSHOTS_DLQ_URL"]
}

output "HEADSHOTS_AWS_REGION" {
  description = "Region of every resource."
  value       = local.worker_settings["HEADSHOTS_AWS_REGION"]
}

output "HEADSHOTS_VISIBILITY_TIMEOUT_S" {
  description = "The queue's visibility timeout, which the worker sets on receive and extends by heartbeat."
  value       = local.worker_settings["HEADSHOTS_VISIBILITY_TIMEOUT_S"]
}

output "HEADSHOTS_HEARTBEAT_INTERVAL_S" {
  description = "Seconds between the worker's heartbeats (lease rule: visibility >= 3 x this)."
  value       = local.worker_settings["HEADSHOTS_HEARTBEAT_INTERVAL_S"]
}

output "HEADSHOTS_OWNER_STALE_AFTER_S" {
  description = "Owner staleness after which a job is taken over (default visibility - 2 x heartbeat)."
  value       = local.worker_settings["HEADSHOTS_OWNER_STALE_AFTER_S"]
}

output "HEADSHOTS_MAX_JOB_DURATION_S" {
  description = "Past this a job ends failed, with its email."
  value       = local.worker_settings["HEADSHOTS_MAX_JOB_DURATION_S"]
}

output "results_retention_days" {
  description = "Days results/ are kept; download links must live exactly as long."
  value       = var.results_retention_days
}

output "HEADSHOTS_MAX_RECEIVE_COUNT" {
  description = "The redrive maxReceiveCount: the worker treats that receive as the final attempt."
  value       = local.worker_settings["HEADSHOTS_MAX_RECEIVE_COUNT"]
}

output "HEADSHOTS_EMAIL_BACKEND" {
  description = "Email is sent through SES in AWS."
  value       = local.worker_settings["HEADSHOTS_EMAIL_BACKEND"]
}

output "HEADSHOTS_EMAIL_SENDER" {
  description = "Verified From address."
  value       = local.worker_settings["HEADSHOTS_EMAIL_SENDER"]
}

output "worker_settings" {
  description = "Every HEADSHOTS_* output above as one map of strings: the container's environment."
  value       = local.worker_settings
}

output "input_bucket_arn" {
  description = "ARN of the input bucket."
  value       = aws_s3_bucket.data["input"].arn
}

output "output_bucket_arn" {
  description = "ARN of the output bucket."
  value       = aws_s3_bucket.data["output"].arn
}

output "queue_arn" {
  description = "ARN of the job queue."
  value       = aws_sqs_queue.jobs.arn
}

output "queue_name" {
  description = "Name of the job queue (CloudWatch dimension for scaling)."
  value       = aws_sqs_queue.jobs.name
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "kms_key_arn" {
  description = "Customer key of the buckets, queues and worker logs."
  value       = aws_kms_key.data.arn
}

output "ses_identity_arn" {
  description = "SES identity the worker may send from."
  value       = local.ses_identity_arn
}

output "ses_configuration_set" {
  description = "SES configuration set (the identity's default) for the worker's emails."
  value       = aws_ses_configuration_set.mail.name
}

output "ses_dkim_tokens" {
  description = "CNAME tokens to publish for DKIM when ses_domain is set."
  value       = var.ses_domain == null ? [] : aws_sesv2_email_identity.sender.dkim_signing_attributes[0].tokens
}

output "uploads_prefix" {
  description = "Prefix under which each job's photos and manifest are uploaded."
  value       = local.uploads_prefix
}

output "alarm_topic_arn" {
  description = "SNS topic every operator alarm notifies (pass it to the compute module's alarm_actions)."
  value       = aws_sns_topic.alarms.arn
}

output "email_events_topic_arn" {
  description = "SNS topic receiving SES bounce, complaint and reject events."
  value       = aws_sns_topic.email_events.arn
}

output "cors_allowed_origins" {
  description = "Web origins the input bucket's CORS rule admits (the front door's, in the root)."
  value       = var.cors_allowed_origins
}
