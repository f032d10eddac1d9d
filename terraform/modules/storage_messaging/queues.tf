# Job queue fed by the input bucket's S3 events, with a dead-letter queue after
# max_receive_count receives. Both encrypted with the customer key.

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name_prefix}-jobs-dlq"
  message_retention_seconds         = var.dlq_retention_s
  max_message_size                  = 262144
  kms_master_key_id                 = aws_kms_key.data.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = local.tags
}

resource "aws_sqs_queue" "jobs" {
  name                       = local.jobs_queue_name
  visibility_timeout_seconds = var.visibility_timeout_s
  message_retention_seconds  = var.message_retention_s
  # S3 event records are a few KB; the SQS maximum leaves room for batched records.
  max_message_size                  = 262144
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = aws_kms_key.data.arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  # The queue policy, set at creation so S3's test event is accepted as soon as the
  # notification exists: only the input bucket of this account may send.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "InputBucketEventsOnly"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = local.jobs_queue_arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = local.input_bucket_arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
  tags = local.tags
}

# Only the job queue may dead-letter into the DLQ (a separate resource: the two queues refer
# to each other). Always present in AWS; see var.local_endpoint_compat.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  count     = var.local_endpoint_compat ? 0 : 1
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

resource "aws_s3_bucket_notification" "input" {
  bucket = aws_s3_bucket.data["input"].id
  queue {
    id            = "job-manifest"
    queue_arn     = aws_sqs_queue.jobs.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = local.uploads_prefix
    filter_suffix = local.trigger_suffix
  }
  # S3 sends a test event when the notification is created: the queue (with its policy) and
  # the key policy letting S3 encrypt for it must exist first.
  depends_on = [aws_sqs_queue.jobs, aws_kms_key.data]
}
