# SES sending identity (a domain with DKIM, or the single sender address) and a
# configuration set that requires TLS and tracks reputation.

resource "aws_ses_domain_identity" "sender" {
  count  = var.ses_domain == null ? 0 : 1
  domain = var.ses_domain
}

resource "aws_ses_domain_dkim" "sender" {
  count  = var.ses_domain == null ? 0 : 1
  domain = aws_ses_domain_identity.sender[0].domain
}

resource "aws_ses_email_identity" "sender" {
  count = var.ses_domain == null ? 1 : 0
  email = var.email_sender
}

resource "aws_ses_configuration_set" "mail" {
  name                       = "${var.name_prefix}-mail"
  reputation_metrics_enabled = true
  sending_enabled            = true
  delivery_options {
    tls_policy = "Require"
  }
}

locals {
  ses_identity_arn = (
    var.ses_domain == null
    ? "arn:${local.partition}:ses:${local.region}:${local.account_id}:identity/${var.email_sender}"
    : "arn:${local.partition}:ses:${local.region}:${local.account_id}:identity/${var.ses_domain}"
  )
}
