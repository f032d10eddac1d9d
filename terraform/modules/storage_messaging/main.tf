# Storage and messaging for the headshot service: the data path that can be applied alone.
# Bucket ARNs are computed from names (not read from resources) so the key policy, the queue
# policy and the bucket policies can refer to each other without a dependency cycle.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  input_bucket_name  = coalesce(var.input_bucket_name, "${var.name_prefix}-input-${local.account_id}")
  output_bucket_name = coalesce(var.output_bucket_name, "${var.name_prefix}-output-${local.account_id}")
  logs_bucket_name   = "${var.name_prefix}-access-logs-${local.account_id}"

  input_bucket_arn  = "arn:${local.partition}:s3:::${local.input_bucket_name}"
  output_bucket_arn = "arn:${local.partition}:s3:::${local.output_bucket_name}"
  logs_bucket_arn   = "arn:${local.partition}:s3:::${local.logs_bucket_name}"

  jobs_queue_name = "${var.name_prefix}-jobs"
  jobs_queue_arn  = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.jobs_queue_name}"

  # Prefixes of the job contract (DESIGN.md): the notification, lifecycle and IAM all use these.
  uploads_prefix = "uploads/"
  results_prefix = "results/"
  jobs_prefix    = "jobs/"
  # With the slash: "foo-manifest.json" (a photo's name) is no trigger.
  trigger_suffix = "/manifest.json"

  # The worker's lease rule (processor/settings.py): S defaults to V - 2H.
  owner_stale_after_s = coalesce(var.owner_stale_after_s, var.visibility_timeout_s - 2 * var.heartbeat_interval_s)

  tags = merge({ service = "headshots", module = "storage_messaging" }, var.tags)
}
