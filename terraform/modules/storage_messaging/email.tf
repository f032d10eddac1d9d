# SES sending identity (a domain, verified with Easy DKIM, or the single sender address) and a
# configuration set that requires TLS and tracks reputation. The identity names the set as its
# default, so every email the worker sends from it goes through the set without a setting.

resource "aws_ses_configuration_set" "mail" {
  #checkov:skip=CKV_AWS_365:TLS is required (tls_policy = "Require") in a dynamic block checkov does not render; only var.local_endpoint_compat, for the offline moto test, leaves it out.
  name                       = "${var.name_prefix}-mail"
  reputation_metrics_enabled = true
  sending_enabled            = true
  dynamic "delivery_options" {
    # Always on in AWS; see var.local_endpoint_compat.
    for_each = var.local_endpoint_compat ? [] : ["Require"]
    content {
      tls_policy = delivery_options.value
    }
  }
}

resource "aws_sesv2_email_identity" "sender" {
  email_identity         = coalesce(var.ses_domain, var.email_sender)
  configuration_set_name = aws_ses_configuration_set.mail.name
  tags                   = local.tags
}

locals {
  ses_identity_arn = aws_sesv2_email_identity.sender.arn
}
