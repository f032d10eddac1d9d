# Input (uploads/<job>/), output (jobs/<job>/, results/<job>/) and their access-log bucket.
# Every bucket: public access blocked, bucket-owner-enforced, TLS-only, lifecycle.

locals {
  data_buckets = {
    input  = { name = local.input_bucket_name, arn = local.input_bucket_arn }
    output = { name = local.output_bucket_name, arn = local.output_bucket_arn }
  }
  all_buckets = merge(local.data_buckets, {
    logs = { name = local.logs_bucket_name, arn = local.logs_bucket_arn }
  })
}

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_21:Versioning would keep deleted photos as noncurrent versions; the service promises uploads are removed after delivery (privacy), and results are re-creatable.
  #checkov:skip=CKV_AWS_144:Cross-region replication would copy people's photos to a second region; the data is transient by design.
  #checkov:skip=CKV2_AWS_61:Both have lifecycle rules (aws_s3_bucket_lifecycle_configuration.input and .output); checkov cannot link them to for_each instances.
  #checkov:skip=CKV2_AWS_62:Only the input bucket has a consumer for events (aws_s3_bucket_notification.input); nothing reacts to output-bucket writes.
  for_each      = local.data_buckets
  bucket        = each.value.name
  force_destroy = var.force_destroy
  tags          = merge(local.tags, { role = each.key })
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target; logging it into itself would loop.
  #checkov:skip=CKV_AWS_21:Access logs are append-only records with their own expiry; versions add nothing.
  #checkov:skip=CKV_AWS_144:Access logs stay in the region of the data they describe.
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to SSE-S3 target buckets (AWS requirement).
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the access-log bucket.
  bucket        = local.logs_bucket_name
  force_destroy = var.force_destroy
  tags          = merge(local.tags, { role = "access-logs" })
}

locals {
  bucket_ids = merge(
    { for k, b in aws_s3_bucket.data : k => b.id },
    { logs = aws_s3_bucket.logs.id },
  )
}

resource "aws_s3_bucket_public_access_block" "all" {
  for_each                = local.all_buckets
  bucket                  = local.bucket_ids[each.key]
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "all" {
  for_each = local.all_buckets
  bucket   = local.bucket_ids[each.key]
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  for_each = local.data_buckets
  bucket   = aws_s3_bucket.data[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

locals {
  deny_insecure_transport = {
    for k, b in local.all_buckets : k => {
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = "s3:*"
      Resource  = [b.arn, "${b.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  # Always present in AWS; see var.local_endpoint_compat.
  for_each = var.local_endpoint_compat ? {} : local.data_buckets
  bucket   = aws_s3_bucket.data[each.key].id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.deny_insecure_transport[each.key]]
  })
  depends_on = [aws_s3_bucket_public_access_block.all]
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.deny_insecure_transport["logs"],
      {
        Sid       = "S3ServerAccessLogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${local.logs_bucket_arn}/*"
        Condition = {
          ArnLike      = { "aws:SourceArn" = [local.input_bucket_arn, local.output_bucket_arn] }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.all]
}

resource "aws_s3_bucket_logging" "data" {
  for_each      = local.data_buckets
  bucket        = aws_s3_bucket.data[each.key].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "${each.key}/"
  depends_on    = [aws_s3_bucket_policy.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "input" {
  bucket = aws_s3_bucket.data["input"].id
  rule {
    id     = "expire-uploads"
    status = "Enabled"
    filter {
      prefix = local.uploads_prefix
    }
    expiration {
      days = var.upload_expiry_days
    }
  }
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "output" {
  bucket = aws_s3_bucket.data["output"].id
  rule {
    id     = "expire-results"
    status = "Enabled"
    filter {
      prefix = local.results_prefix
    }
    expiration {
      days = var.results_retention_days
    }
  }
  rule {
    id     = "expire-job-records"
    status = "Enabled"
    filter {
      prefix = local.jobs_prefix
    }
    expiration {
      days = var.job_record_expiry_days
    }
  }
  # Download clicks (the front door writes at most one object per job, file and hour) go with
  # the results they counted.
  rule {
    id     = "expire-clicks"
    status = "Enabled"
    filter {
      prefix = "clicks/"
    }
    expiration {
      days = var.results_retention_days
    }
  }
  # Ratings (stars, favourite file names, the run's settings: no personal data) feed
  # `headshots metrics`; they are kept for ratings_retention_days.
  rule {
    id     = "expire-ratings"
    status = "Enabled"
    filter {
      prefix = "feedback/"
    }
    expiration {
      days = var.ratings_retention_days
    }
  }
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }
  }
}

# Access logs hold what they describe: the input bucket's, uploaders' IPs and photo names, so
# they go when the uploads' lifecycle would have removed the photos; the output bucket's,
# downloaders' IPs and job ids, so they go with the results. (Logs land under input/ and
# output/, the target prefixes of aws_s3_bucket_logging.data.)
resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-input-access-logs"
    status = "Enabled"
    filter {
      prefix = "input/"
    }
    expiration {
      days = var.upload_expiry_days
    }
  }
  rule {
    id     = "expire-output-access-logs"
    status = "Enabled"
    filter {
      prefix = "output/"
    }
    expiration {
      days = var.results_retention_days
    }
  }
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }
  }
}

resource "aws_s3_bucket_cors_configuration" "input" {
  count  = length(var.cors_allowed_origins) > 0 ? 1 : 0
  bucket = aws_s3_bucket.data["input"].id
  cors_rule {
    allowed_methods = ["PUT", "POST"]
    allowed_origins = var.cors_allowed_origins
    allowed_headers = ["content-type", "content-md5", "x-amz-*"]
    expose_headers  = ["ETag"]
    max_age_seconds = 3000
  }
}
