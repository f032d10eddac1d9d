# The front door's state: the link key (Secrets Manager) and the rate-limit counters (DynamoDB).

# A random 64-character key from Secrets Manager (or your own: var.link_key), written
# write-only, so the secret's resource never holds it. The generating data source does record
# the value it read in the state of that run; a data source is used rather than the ephemeral
# resource because `terraform test`'s mock providers cannot run ephemeral resources yet. To keep
# the key out of state entirely, set generate_link_key = false and pass link_key (TF_VAR_link_key).
# The data source draws a new value at every plan; only a new link_key_version writes one.
# After that, rotation.tf rotates the key automatically (the version Terraform wrote is then
# AWSPREVIOUS, later unstaged; Terraform leaves it be).
data "aws_secretsmanager_random_password" "link_key" {
  count               = var.generate_link_key ? 1 : 0
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "link_key" {
  name                    = "${var.name_prefix}/frontdoor/link-key"
  description             = "HMAC key of the emailed links and job tokens (front door verifies, worker signs)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "link_key" {
  secret_id                = aws_secretsmanager_secret.link_key.id
  secret_string_wo         = var.generate_link_key ? data.aws_secretsmanager_random_password.link_key[0].random_password : var.link_key
  secret_string_wo_version = var.link_key_version
}

resource "aws_dynamodb_table" "rate_limits" {
  name         = "${var.name_prefix}-frontdoor-rate-limits"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  attribute {
    name = "pk"
    type = "S"
  }
  # Each counter (a window of one client or address) removes itself two windows later.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
  deletion_protection_enabled = true
  tags                        = local.tags
}
