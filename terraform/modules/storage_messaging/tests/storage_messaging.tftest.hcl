# Pins the facts the service depends on, offline (mock provider: nothing is created).

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
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:mock" }
  }
}

variables {
  email_sender = "headshots@example.com"
}

run "manifest_upload_notifies_the_job_queue_only" {
  override_resource {
    target = aws_sqs_queue.jobs
    values = { arn = "arn:aws:sqs:us-east-1:123456789012:headshots-jobs" }
  }

  assert {
    condition     = length(aws_s3_bucket_notification.input.queue) == 1
    error_message = "exactly one notification target: the job queue"
  }
  assert {
    condition     = aws_s3_bucket_notification.input.queue[0].filter_prefix == "uploads/" && aws_s3_bucket_notification.input.queue[0].filter_suffix == "/manifest.json"
    error_message = "the notification must fire on uploads/**/manifest.json only (suffix with the slash: uploads/x/foo-manifest.json is a photo's name, not the trigger)"
  }
  assert {
    condition     = aws_s3_bucket_notification.input.queue[0].queue_arn == aws_sqs_queue.jobs.arn && contains(aws_s3_bucket_notification.input.queue[0].events, "s3:ObjectCreated:*")
    error_message = "object-created events must go to the job queue"
  }
  assert {
    condition     = aws_s3_bucket_notification.input.bucket == aws_s3_bucket.data["input"].id
    error_message = "the notification belongs on the input bucket"
  }
}

run "queue_policy_lets_only_the_input_bucket_send" {
  override_resource {
    target = aws_sqs_queue.jobs
    values = { arn = "arn:aws:sqs:us-east-1:123456789012:headshots-jobs" }
  }

  assert {
    condition     = length(jsondecode(aws_sqs_queue.jobs.policy).Statement) == 1
    error_message = "one statement: S3 from the input bucket"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.jobs.policy).Statement[0].Condition.ArnEquals["aws:SourceArn"] == "arn:aws:s3:::headshots-input-123456789012"
    error_message = "aws:SourceArn must be the input bucket's ARN"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.jobs.policy).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012"
    error_message = "aws:SourceAccount must be this account"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.jobs.policy).Statement[0].Principal.Service == "s3.amazonaws.com" && jsondecode(aws_sqs_queue.jobs.policy).Statement[0].Action == "sqs:SendMessage"
    error_message = "only S3 may send, and only SendMessage"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.jobs.policy).Statement[0].Resource == aws_sqs_queue.jobs.arn
    error_message = "the policy's resource is the job queue itself"
  }
  assert {
    condition     = length([for s in jsondecode(aws_kms_key.data.policy).Statement : s if try(s.Principal.Service, "") == "s3.amazonaws.com" && contains(flatten([s.Action]), "kms:GenerateDataKey") && try(s.Condition.ArnLike["aws:SourceArn"], "") == "arn:aws:s3:::headshots-input-123456789012"]) == 1
    error_message = "the key policy must let S3 (from the input bucket) encrypt events for the KMS-encrypted queue"
  }
}

run "redrive_to_the_dead_letter_queue" {
  variables {
    max_receive_count = 4
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.jobs.redrive_policy).maxReceiveCount == 4
    error_message = "maxReceiveCount must come from the variable"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.jobs.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq.arn
    error_message = "the job queue must redrive to the DLQ"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_allow_policy.dlq[0].redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.jobs.arn]
    error_message = "only the job queue may use the DLQ"
  }
  assert {
    condition     = aws_sqs_queue.dlq.message_retention_seconds > aws_sqs_queue.jobs.message_retention_seconds
    error_message = "the DLQ keeps messages longer than the job queue"
  }
  assert {
    condition     = aws_sqs_queue.jobs.max_message_size >= 65536 && aws_sqs_queue.jobs.kms_master_key_id == aws_kms_key.data.arn && aws_sqs_queue.dlq.kms_master_key_id == aws_kms_key.data.arn
    error_message = "queues hold >= 64 KB S3 events and are encrypted with the customer key"
  }
  assert {
    condition     = output.HEADSHOTS_MAX_RECEIVE_COUNT == "4"
    error_message = "the worker learns maxReceiveCount from the same variable"
  }
}

run "lifecycle_days_come_from_variables" {
  variables {
    upload_expiry_days           = 5
    results_retention_days       = 21
    abort_incomplete_upload_days = 2
  }

  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.input.rule : r.expiration[0].days if r.id == "expire-uploads"]) == 5 && one([for r in aws_s3_bucket_lifecycle_configuration.input.rule : r.filter[0].prefix if r.id == "expire-uploads"]) == "uploads/"
    error_message = "uploads/ expires after upload_expiry_days"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.expiration[0].days if r.id == "expire-results"]) == 21 && one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.filter[0].prefix if r.id == "expire-results"]) == "results/"
    error_message = "results/ expires after results_retention_days"
  }
  assert {
    condition     = alltrue([for lc in [aws_s3_bucket_lifecycle_configuration.input, aws_s3_bucket_lifecycle_configuration.output] : anytrue([for r in lc.rule : try(r.abort_incomplete_multipart_upload[0].days_after_initiation, 0) == 2])])
    error_message = "incomplete multipart uploads are aborted in both data buckets"
  }
}

run "clicks_expire_with_the_results_and_ratings_are_kept_their_own_time" {
  variables {
    results_retention_days = 21
    ratings_retention_days = 400
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.expiration[0].days if r.id == "expire-clicks"]) == 21 && one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.filter[0].prefix if r.id == "expire-clicks"]) == "clicks/"
    error_message = "download clicks (clicks/) go with the results"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.expiration[0].days if r.id == "expire-ratings"]) == 400 && one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.filter[0].prefix if r.id == "expire-ratings"]) == "feedback/"
    error_message = "ratings (feedback/) are kept ratings_retention_days"
  }
}

run "ratings_are_kept_two_years_by_default" {
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.expiration[0].days if r.id == "expire-ratings"]) == 730
    error_message = "the documented default"
  }
}

run "access_logs_live_as_long_as_the_data_they_describe" {
  variables {
    upload_expiry_days     = 5
    results_retention_days = 21
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.logs.rule : r.expiration[0].days if r.id == "expire-input-access-logs"]) == 5 && one([for r in aws_s3_bucket_lifecycle_configuration.logs.rule : r.filter[0].prefix if r.id == "expire-input-access-logs"]) == "input/"
    error_message = "the input bucket's access logs (uploaders' IPs, photo names) go when the uploads would"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.logs.rule : r.expiration[0].days if r.id == "expire-output-access-logs"]) == 21 && one([for r in aws_s3_bucket_lifecycle_configuration.logs.rule : r.filter[0].prefix if r.id == "expire-output-access-logs"]) == "output/"
    error_message = "the output bucket's access logs (downloaders' IPs, job ids) go with the results"
  }
  assert {
    condition     = { for k, l in aws_s3_bucket_logging.data : k => l.target_prefix } == { input = "input/", output = "output/" }
    error_message = "the logs land under the prefixes the rules expire"
  }
  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.logs.rule : try(r.expiration[0].days, 0) <= 21])
    error_message = "no access log outlives the data it describes"
  }
}

run "no_public_access_and_tls_only" {
  assert {
    condition     = length(aws_s3_bucket_public_access_block.all) == 3 && alltrue([for b in aws_s3_bucket_public_access_block.all : b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets])
    error_message = "every bucket blocks all public access"
  }
  assert {
    condition     = alltrue([for o in aws_s3_bucket_ownership_controls.all : o.rule[0].object_ownership == "BucketOwnerEnforced"])
    error_message = "every bucket is bucket-owner-enforced (no ACLs)"
  }
  assert {
    condition     = alltrue([for p in aws_s3_bucket_policy.data : jsondecode(p.policy).Statement[0].Effect == "Deny" && jsondecode(p.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"])
    error_message = "data buckets deny every request not made over TLS"
  }
  assert {
    condition     = alltrue([for c in aws_s3_bucket_server_side_encryption_configuration.data : one(c.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" && one(c.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == aws_kms_key.data.arn])
    error_message = "data buckets use SSE-KMS with the customer key"
  }
  assert {
    condition     = length(aws_s3_bucket_cors_configuration.input) == 0
    error_message = "no CORS rule unless origins are given"
  }
}

run "cors_for_browser_uploads" {
  variables {
    cors_allowed_origins = ["https://app.example.com"]
  }
  assert {
    condition     = one(aws_s3_bucket_cors_configuration.input[0].cors_rule).allowed_origins == toset(["https://app.example.com"]) && contains(one(aws_s3_bucket_cors_configuration.input[0].cors_rule).allowed_methods, "PUT")
    error_message = "the input bucket accepts PUT from the configured origins"
  }
}

run "outputs_are_named_as_the_worker_settings" {
  assert {
    condition     = output.HEADSHOTS_INPUT_BUCKET == "headshots-input-123456789012" && output.HEADSHOTS_OUTPUT_BUCKET == "headshots-output-123456789012"
    error_message = "bucket outputs"
  }
  assert {
    condition     = output.HEADSHOTS_QUEUE_URL == aws_sqs_queue.jobs.id && output.HEADSHOTS_DLQ_URL == aws_sqs_queue.dlq.id
    error_message = "queue URL outputs"
  }
  assert {
    condition     = output.HEADSHOTS_AWS_REGION == "us-east-1" && output.HEADSHOTS_EMAIL_BACKEND == "ses" && output.HEADSHOTS_EMAIL_SENDER == "headshots@example.com" && output.HEADSHOTS_VISIBILITY_TIMEOUT_S == "120"
    error_message = "region, email and visibility outputs"
  }
  assert {
    condition     = sort(keys(output.worker_settings)) == sort(["HEADSHOTS_AWS_REGION", "HEADSHOTS_DLQ_URL", "HEADSHOTS_EMAIL_BACKEND", "HEADSHOTS_EMAIL_SENDER", "HEADSHOTS_HEARTBEAT_INTERVAL_S", "HEADSHOTS_INPUT_BUCKET", "HEADSHOTS_MAX_JOB_DURATION_S", "HEADSHOTS_MAX_RECEIVE_COUNT", "HEADSHOTS_OUTPUT_BUCKET", "HEADSHOTS_OWNER_STALE_AFTER_S", "HEADSHOTS_QUEUE_URL", "HEADSHOTS_VISIBILITY_TIMEOUT_S"])
    error_message = "worker_settings carries exactly the HEADSHOTS_* outputs"
  }
  assert {
    condition     = aws_sesv2_email_identity.sender.email_identity == "headshots@example.com" && aws_sesv2_email_identity.sender.configuration_set_name == aws_ses_configuration_set.mail.name
    error_message = "the sender is an SES identity whose default configuration set is ours"
  }
}

run "compat_switch_only_drops_what_moto_cannot_store" {
  variables {
    local_endpoint_compat = true
  }
  assert {
    condition     = length(aws_sqs_queue_redrive_allow_policy.dlq) == 0 && length(aws_s3_bucket_policy.data) == 0 && length(aws_ses_configuration_set.mail.delivery_options) == 0 && length(aws_ses_event_destination.bounces_and_complaints) == 0
    error_message = "compat mode leaves out exactly the redrive-allow policy, the TLS bucket policies, the SES TLS option and the SES event destination"
  }
  assert {
    condition     = aws_s3_bucket_notification.input.queue[0].filter_suffix == "/manifest.json" && jsondecode(aws_sqs_queue.jobs.redrive_policy).maxReceiveCount == 3
    error_message = "the data path is unchanged in compat mode"
  }
}

run "rejects_wildcard_cors_origin" {
  command = plan
  variables {
    cors_allowed_origins = ["*"]
  }
  expect_failures = [var.cors_allowed_origins]
}

run "rejects_dlq_retention_not_longer_than_the_queue" {
  command = plan
  variables {
    message_retention_s = 1209600
    dlq_retention_s     = 1209600
    upload_expiry_days  = 15
  }
  expect_failures = [var.dlq_retention_s]
}

# The worker's lease rule (processor/settings.py), mirrored: H > 0, V >= 3H, S >= 2H with
# S = V - 2H by default, max job duration > V. The outputs are the worker's settings.
run "lease_defaults_are_the_workers" {
  assert {
    condition     = output.HEADSHOTS_VISIBILITY_TIMEOUT_S == "120" && output.HEADSHOTS_HEARTBEAT_INTERVAL_S == "30" && output.HEADSHOTS_OWNER_STALE_AFTER_S == "60" && output.HEADSHOTS_MAX_JOB_DURATION_S == "10800"
    error_message = "defaults V=120, H=30 give S = V - 2H = 60; max job duration 3 h"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.output.rule : r.expiration[0].days if r.id == "expire-results"]) == 7 && output.results_retention_days == 7
    error_message = "results/ are kept 7 days by default, and the front door learns the same number"
  }
}

run "owner_staleness_is_derived_from_visibility_and_heartbeat" {
  command = plan
  variables {
    visibility_timeout_s = 300
    heartbeat_interval_s = 20
  }
  assert {
    condition     = output.HEADSHOTS_OWNER_STALE_AFTER_S == "260" && output.HEADSHOTS_HEARTBEAT_INTERVAL_S == "20"
    error_message = "S = V - 2H when not set"
  }
}

run "owner_staleness_may_be_set" {
  command = plan
  variables {
    owner_stale_after_s = 90
  }
  assert {
    condition     = output.HEADSHOTS_OWNER_STALE_AFTER_S == "90"
    error_message = "an explicit S is passed through"
  }
}

run "accepts_the_lease_rule_at_its_bounds" {
  command = plan
  variables {
    visibility_timeout_s = 90
    heartbeat_interval_s = 30
    owner_stale_after_s  = 60
    max_job_duration_s   = 91
  }
  assert {
    condition     = output.HEADSHOTS_OWNER_STALE_AFTER_S == "60"
    error_message = "V = 3H and S = 2H are allowed"
  }
}

run "rejects_visibility_below_three_heartbeats" {
  command = plan
  variables {
    visibility_timeout_s = 89
    heartbeat_interval_s = 30
  }
  expect_failures = [var.visibility_timeout_s]
}

run "rejects_a_non_positive_heartbeat" {
  command = plan
  variables {
    heartbeat_interval_s = 0
  }
  expect_failures = [var.heartbeat_interval_s]
}

run "rejects_staleness_below_two_heartbeats" {
  command = plan
  variables {
    owner_stale_after_s = 59
  }
  expect_failures = [var.owner_stale_after_s]
}

run "rejects_max_job_duration_not_longer_than_visibility" {
  command = plan
  variables {
    max_job_duration_s = 120
  }
  expect_failures = [var.max_job_duration_s]
}

run "rejects_uploads_expiring_before_the_last_possible_attempt" {
  command = plan
  variables {
    upload_expiry_days  = 4
    message_retention_s = 345600
    max_job_duration_s  = 10800
  }
  expect_failures = [var.upload_expiry_days]
}

run "alarms_notify_the_alarm_topic_by_default" {
  assert {
    condition     = alltrue([for a in [aws_cloudwatch_metric_alarm.dlq_not_empty, aws_cloudwatch_metric_alarm.oldest_message_age] : contains(a.alarm_actions, aws_sns_topic.alarms.arn) && contains(a.ok_actions, aws_sns_topic.alarms.arn)])
    error_message = "every alarm notifies the alarm topic without any setting"
  }
  assert {
    condition     = length(aws_sns_topic_subscription.alarm_email) == 0 && aws_sns_topic.alarms.kms_master_key_id == aws_kms_key.data.arn && output.alarm_topic_arn == aws_sns_topic.alarms.arn
    error_message = "an encrypted topic, no email subscription unless asked"
  }
  assert {
    condition     = jsondecode(aws_sns_topic_policy.publishers["alarms"].policy).Statement[0].Principal.Service == "cloudwatch.amazonaws.com" && jsondecode(aws_sns_topic_policy.publishers["email_events"].policy).Statement[0].Principal.Service == "ses.amazonaws.com"
    error_message = "CloudWatch publishes alarms, SES publishes email events"
  }
  assert {
    condition     = length([for s in jsondecode(aws_kms_key.data.policy).Statement : s if try(contains(s.Principal.Service, "cloudwatch.amazonaws.com") && contains(s.Principal.Service, "ses.amazonaws.com"), false)]) == 1
    error_message = "the key lets CloudWatch and SES publish to the encrypted topics"
  }
}

run "alarm_email_subscribes_to_the_topic" {
  variables {
    alarm_email   = "oncall@example.com"
    alarm_actions = ["arn:aws:sns:us-east-1:123456789012:pager"]
  }
  assert {
    condition     = aws_sns_topic_subscription.alarm_email[0].protocol == "email" && aws_sns_topic_subscription.alarm_email[0].endpoint == "oncall@example.com" && aws_sns_topic_subscription.alarm_email[0].topic_arn == aws_sns_topic.alarms.arn
    error_message = "the optional email subscribes to the alarm topic"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.dlq_not_empty.alarm_actions == toset([aws_sns_topic.alarms.arn, "arn:aws:sns:us-east-1:123456789012:pager"])
    error_message = "extra alarm actions are added to the topic, not instead of it"
  }
}

run "ses_bounces_and_complaints_go_to_sns" {
  assert {
    condition     = aws_ses_event_destination.bounces_and_complaints[0].configuration_set_name == aws_ses_configuration_set.mail.name && aws_ses_event_destination.bounces_and_complaints[0].enabled
    error_message = "the event destination belongs to the identity's default configuration set"
  }
  assert {
    condition     = contains(aws_ses_event_destination.bounces_and_complaints[0].matching_types, "bounce") && contains(aws_ses_event_destination.bounces_and_complaints[0].matching_types, "complaint")
    error_message = "bounces and complaints are published"
  }
  assert {
    condition     = aws_ses_event_destination.bounces_and_complaints[0].sns_destination[0].topic_arn == aws_sns_topic.email_events.arn && output.email_events_topic_arn == aws_sns_topic.email_events.arn
    error_message = "to the email-events topic"
  }
}

run "rejects_a_bad_alarm_email" {
  command = plan
  variables {
    alarm_email = "not-an-address"
  }
  expect_failures = [var.alarm_email]
}
