# Where people hear about the service: one SNS topic that every operator alarm notifies (with an
# optional email subscription), and one that receives SES's bounce and complaint events (for a
# suppression handler or a person to subscribe). Both encrypted with the customer key.

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.data.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_sns_topic" "email_events" {
  name              = "${var.name_prefix}-email-events"
  kms_master_key_id = aws_kms_key.data.arn
  tags              = local.tags
}

locals {
  # Every alarm of the service notifies the alarm topic, plus any ARNs the operator adds.
  alarm_actions = concat([aws_sns_topic.alarms.arn], var.alarm_actions)

  topic_publishers = {
    alarms       = { topic = aws_sns_topic.alarms.arn, service = "cloudwatch.amazonaws.com" }
    email_events = { topic = aws_sns_topic.email_events.arn, service = "ses.amazonaws.com" }
  }
}

# Only this account's CloudWatch alarms (resp. SES) may publish to each topic.
resource "aws_sns_topic_policy" "publishers" {
  for_each = local.topic_publishers
  arn      = each.value.topic
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ServicePublishes"
      Effect    = "Allow"
      Principal = { Service = each.value.service }
      Action    = "sns:Publish"
      Resource  = each.value.topic
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
}

resource "aws_ses_event_destination" "bounces_and_complaints" {
  # Always present in AWS; see var.local_endpoint_compat (moto cannot delete it).
  count                  = var.local_endpoint_compat ? 0 : 1
  name                   = "bounces-and-complaints"
  configuration_set_name = aws_ses_configuration_set.mail.name
  enabled                = true
  matching_types         = ["bounce", "complaint", "reject"]
  sns_destination {
    topic_arn = aws_sns_topic.email_events.arn
  }
  depends_on = [aws_sns_topic_policy.publishers]
}
