variable "name_prefix" {
  description = "Prefix of every resource name (lower-case letters, digits, dashes). Also the default stem of the bucket names."
  type        = string
  default     = "headshots"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "input_bucket_name" {
  description = "Name of the bucket that receives uploads/<job>/ (null: \"<name_prefix>-input-<account id>\")."
  type        = string
  default     = null
  validation {
    condition     = var.input_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.input_bucket_name))
    error_message = "input_bucket_name must be a valid S3 bucket name (3-63 characters, a-z 0-9 . -)."
  }
}

variable "output_bucket_name" {
  description = "Name of the bucket holding jobs/<job>/ and results/<job>/ (null: \"<name_prefix>-output-<account id>\")."
  type        = string
  default     = null
  validation {
    condition     = var.output_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.output_bucket_name))
    error_message = "output_bucket_name must be a valid S3 bucket name (3-63 characters, a-z 0-9 . -)."
  }
}

variable "upload_expiry_days" {
  description = "Days after which photos under uploads/ are deleted by lifecycle (privacy backstop: the worker deletes them after delivery)."
  type        = number
  default     = 7
  validation {
    condition     = var.upload_expiry_days >= 1 && var.upload_expiry_days <= 90 && floor(var.upload_expiry_days) == var.upload_expiry_days
    error_message = "upload_expiry_days must be a whole number of days between 1 and 90."
  }
  validation {
    # A message can wait message_retention_s and its job then run max_job_duration_s: the photos
    # must still be there when the last possible attempt reads them.
    condition     = var.upload_expiry_days * 86400 > var.message_retention_s + var.max_job_duration_s
    error_message = "upload_expiry_days must outlast the queue's message retention plus the maximum job duration (message_retention_s + max_job_duration_s)."
  }
}

variable "results_retention_days" {
  description = "Days delivered headshots under results/ are kept (lifecycle expiry). Download links in the email live exactly as long (the front door signs them for this many days)."
  type        = number
  default     = 7
  validation {
    condition     = var.results_retention_days >= 1 && var.results_retention_days <= 3650 && floor(var.results_retention_days) == var.results_retention_days
    error_message = "results_retention_days must be a whole number of days between 1 and 3650."
  }
}

variable "job_record_expiry_days" {
  description = "Days after which jobs/<job>/ (status.json and stage checkpoints) are deleted. status.json is what makes a duplicate message a no-op, so it must outlive the queue's retention."
  type        = number
  default     = 90
  validation {
    condition     = var.job_record_expiry_days * 86400 > var.dlq_retention_s && floor(var.job_record_expiry_days) == var.job_record_expiry_days
    error_message = "job_record_expiry_days must be whole days and longer than the dead-letter queue retention."
  }
}

variable "abort_incomplete_upload_days" {
  description = "Days after which incomplete multipart uploads are aborted in both buckets."
  type        = number
  default     = 1
  validation {
    condition     = var.abort_incomplete_upload_days >= 1 && var.abort_incomplete_upload_days <= 30
    error_message = "abort_incomplete_upload_days must be between 1 and 30."
  }
}

variable "cors_allowed_origins" {
  description = "Browser origins allowed to PUT/POST photos straight into the input bucket (empty: no CORS rule)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.cors_allowed_origins : can(regex("^https://[^*/]+$|^http://localhost(:[0-9]+)?$", o))])
    error_message = "Each CORS origin must be https://host[:port] (no wildcard, no path) or http://localhost[:port]."
  }
}

variable "visibility_timeout_s" {
  description = "Queue visibility timeout V in seconds; the worker extends it by heartbeat while a job runs (same value as HEADSHOTS_VISIBILITY_TIMEOUT_S)."
  type        = number
  default     = 120
  validation {
    condition     = var.visibility_timeout_s >= 10 && var.visibility_timeout_s <= 43200 && floor(var.visibility_timeout_s) == var.visibility_timeout_s
    error_message = "visibility_timeout_s must be whole seconds between 10 and 43200 (SQS limits)."
  }
  validation {
    # The worker's lease rule (processor/settings.py): three heartbeats fit in one visibility.
    condition     = var.visibility_timeout_s >= 3 * var.heartbeat_interval_s
    error_message = "visibility_timeout_s must be at least 3 x heartbeat_interval_s (the worker's lease rule: V >= 3H)."
  }
}

# The lease rule, mirrored from the worker (processor/settings.py), which refuses to start
# otherwise: H > 0, V >= 3H, S >= 2H, S defaults to V - 2H; max_job_duration_s > V.
variable "heartbeat_interval_s" {
  description = "H: seconds between the worker's heartbeats (visibility extension and owner lease renewal); HEADSHOTS_HEARTBEAT_INTERVAL_S."
  type        = number
  default     = 30
  validation {
    condition     = var.heartbeat_interval_s > 0
    error_message = "heartbeat_interval_s must be > 0."
  }
}

variable "owner_stale_after_s" {
  description = "S: a job whose owner has not heartbeated for this long is taken over; null derives it as visibility_timeout_s - 2 x heartbeat_interval_s (60 s with the defaults). HEADSHOTS_OWNER_STALE_AFTER_S."
  type        = number
  default     = null
  nullable    = true
  validation {
    condition     = var.owner_stale_after_s == null || try(var.owner_stale_after_s >= 2 * var.heartbeat_interval_s, false)
    error_message = "owner_stale_after_s must be at least 2 x heartbeat_interval_s (the worker's lease rule: S >= 2H), or null to derive it."
  }
}

variable "max_job_duration_s" {
  description = "Past this many seconds a job ends failed, with its email (HEADSHOTS_MAX_JOB_DURATION_S). Longer than the visibility timeout."
  type        = number
  default     = 10800
  validation {
    condition     = var.max_job_duration_s > var.visibility_timeout_s && floor(var.max_job_duration_s) == var.max_job_duration_s
    error_message = "max_job_duration_s must be whole seconds, longer than visibility_timeout_s."
  }
}

variable "message_retention_s" {
  description = "How long an unprocessed job message stays on the queue, in seconds."
  type        = number
  default     = 345600 # 4 days
  validation {
    condition     = var.message_retention_s >= 3600 && var.message_retention_s <= 1209600
    error_message = "message_retention_s must be between 3600 and 1209600 (14 days)."
  }
}

variable "dlq_retention_s" {
  description = "Retention of the dead-letter queue in seconds; longer than the job queue's so operators can inspect failures."
  type        = number
  default     = 1209600 # 14 days, the SQS maximum
  validation {
    condition     = var.dlq_retention_s > var.message_retention_s && var.dlq_retention_s <= 1209600
    error_message = "dlq_retention_s must be longer than message_retention_s and at most 1209600 (14 days)."
  }
}

variable "max_receive_count" {
  description = "Receives before a job message is moved to the dead-letter queue (same value as HEADSHOTS_MAX_RECEIVE_COUNT)."
  type        = number
  default     = 3
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number between 1 and 1000."
  }
}

variable "email_sender" {
  description = "From address of every email (HEADSHOTS_EMAIL_SENDER). Verified in SES as an address, or through ses_domain."
  type        = string
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.email_sender))
    error_message = "email_sender must be an email address."
  }
}

variable "ses_domain" {
  description = "Domain to verify in SES (with DKIM); null verifies the single email_sender address instead."
  type        = string
  default     = null
  validation {
    condition     = var.ses_domain == null || can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.ses_domain))
    error_message = "ses_domain must be a lower-case DNS name such as example.com."
  }
  validation {
    condition     = var.ses_domain == null || endswith(var.email_sender, "@${coalesce(var.ses_domain, "-")}")
    error_message = "email_sender must be an address of ses_domain."
  }
}

variable "oldest_message_sla_s" {
  description = "Alarm when the oldest waiting job is older than this many seconds (the delivery promise is one hour)."
  type        = number
  default     = 1800
  validation {
    condition     = var.oldest_message_sla_s >= 60 && var.oldest_message_sla_s <= 86400
    error_message = "oldest_message_sla_s must be between 60 and 86400."
  }
}

variable "alarm_email" {
  description = "Email address subscribed to the alarm topic (SNS asks it to confirm); null: none, subscribe your own endpoints to the alarm_topic_arn output."
  type        = string
  default     = null
  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an email address or null."
  }
}

variable "alarm_actions" {
  description = "Extra ARNs notified when an alarm fires or recovers; the module's alarm topic is always notified."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.alarm_actions : startswith(a, "arn:")])
    error_message = "alarm_actions must be ARNs."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the data key is deleted after a destroy."
  type        = number
  default     = 30
  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty buckets (test and demo stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "ratings_retention_days" {
  description = "Days ratings under feedback/ are kept (stars, favourite file names, the run's settings: no personal data; `headshots metrics` reads them)."
  type        = number
  default     = 730
  validation {
    condition     = var.ratings_retention_days >= 1 && var.ratings_retention_days <= 3650 && floor(var.ratings_retention_days) == var.ratings_retention_days
    error_message = "ratings_retention_days must be a whole number of days between 1 and 3650."
  }
}

variable "local_endpoint_compat" {
  description = "Set only when applying to the offline moto endpoint (tests/terraform/test_apply_local.py): leaves out what moto cannot store or evaluate: the configuration set's TLS requirement and the DLQ's redrive-allow policy (apply would wait forever), the data buckets' TLS-only policy (moto ignores its condition and denies every object write) and the SES bounce/complaint event destination (moto creates it but cannot delete it, so destroy would wait forever). Never set it for AWS."
  type        = bool
  default     = false
}
