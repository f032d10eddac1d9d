variable "name_prefix" {
  description = "Prefix of every resource name (e.g. headshots-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name_prefix))
    error_message = "name_prefix must be 2-41 lower-case letters, digits or dashes."
  }
}

variable "package_path" {
  description = "The Lambda zip built by scripts/build-frontdoor-zip.sh (no archive provider offline)."
  type        = string
}

variable "input_bucket_name" {
  description = "Bucket of uploads/<job>/ (the front door signs POST policies for it and writes the manifest)."
  type        = string
}

variable "input_bucket_arn" {
  description = "ARN of the input bucket."
  type        = string
}

variable "output_bucket_name" {
  description = "Bucket of jobs/<job>/status.json, results/<job>/ and feedback/<job>/."
  type        = string
}

variable "output_bucket_arn" {
  description = "ARN of the output bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "The service's customer key: buckets, the link key's secret, the table, the logs, the environment."
  type        = string
}

variable "results_retention_days" {
  description = "How long results/ are kept (the bucket lifecycle); the emailed links live exactly this long."
  type        = number
  validation {
    condition     = var.results_retention_days >= 1 && var.results_retention_days <= 366 && floor(var.results_retention_days) == var.results_retention_days
    error_message = "results_retention_days must be a whole number of days, 1-366."
  }
}

variable "public_url" {
  description = "Public base URL when a custom domain fronts the function URL (null: the function URL itself)."
  type        = string
  default     = null
  validation {
    condition     = var.public_url == null || can(regex("^https://[^/?#]+(/[^?#]*)?$", coalesce(var.public_url, "https://x")))
    error_message = "public_url must be an https:// base URL without query or fragment."
  }
}

variable "extra_upload_origins" {
  description = "Web origins besides the front door's own that may POST uploads to the input bucket (usually none)."
  type        = list(string)
  default     = []
}

variable "upload_policy_ttl_s" {
  description = "Expiry of the upload page's presigned POST policies, in seconds."
  type        = number
  default     = 900
  validation {
    condition     = var.upload_policy_ttl_s >= 60 && var.upload_policy_ttl_s <= 3600
    error_message = "upload_policy_ttl_s must be 60-3600."
  }
}

variable "redirect_ttl_s" {
  description = "Lifetime of the presigned GET each link click is redirected to, in seconds."
  type        = number
  default     = 300
  validation {
    condition     = var.redirect_ttl_s >= 10 && var.redirect_ttl_s <= 3600
    error_message = "redirect_ttl_s must be 10-3600."
  }
}

variable "jobs_per_client_per_hour" {
  description = "Jobs one client (IPv4 address or IPv6 /64; an IPv6 /48 gets 4x) may start per hour."
  type        = number
  default     = 10
}

variable "jobs_per_address_per_day" {
  description = "Jobs one (proven) email address may start per day."
  type        = number
  default     = 5
}

variable "jobs_per_hour" {
  description = "Jobs everyone together may start per hour: the GPU budget's cap (hitting it raises the cap alarm)."
  type        = number
  default     = 100
}

variable "proof_emails_per_address_per_hour" {
  description = "Code emails one address may be sent per hour."
  type        = number
  default     = 3
}

variable "proof_emails_per_address_per_day" {
  description = "Code emails one address may be sent per day."
  type        = number
  default     = 6
}

variable "proof_emails_per_client_per_hour" {
  description = "Code emails one client (IPv4 address or IPv6 /64; a /48 gets 4x) may ask for per hour."
  type        = number
  default     = 10
}

variable "proof_emails_per_hour" {
  description = "Code emails the front door sends per hour in all: SES reputation's cap (hitting it raises the cap alarm)."
  type        = number
  default     = 500
}

variable "email_sender" {
  description = "From address of the code email (the service's verified sender; the role may send as it alone)."
  type        = string
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.email_sender))
    error_message = "email_sender must be an email address."
  }
}

variable "ses_identity_arn" {
  description = "The SES identity the code email is sent from (storage_messaging's ses_identity_arn)."
  type        = string
}

variable "ses_configuration_set" {
  description = "The SES configuration set of that identity (its default)."
  type        = string
}

variable "trusted_proxy" {
  description = "What stands in front of the function URL: \"none\" (clients are counted by the connection's address; forwarding headers are ignored) or \"cloudfront\" (the URL then answers only cloudfront_distribution_arn, through origin access control, and CloudFront's viewer-address header is trusted)."
  type        = string
  default     = "none"
  validation {
    condition     = contains(["none", "cloudfront"], var.trusted_proxy)
    error_message = "trusted_proxy must be \"none\" or \"cloudfront\"."
  }
}

variable "cloudfront_distribution_arn" {
  description = "The distribution in front of the function URL when trusted_proxy is \"cloudfront\" (its origin access control signs for the URL)."
  type        = string
  default     = null
  validation {
    condition     = (var.trusted_proxy == "cloudfront") == (var.cloudfront_distribution_arn != null)
    error_message = "Set cloudfront_distribution_arn exactly when trusted_proxy is \"cloudfront\"."
  }
}

variable "alarm_actions" {
  description = "ARNs notified when the global-cap alarm fires or recovers (the service's alarm topic)."
  type        = list(string)
  default     = []
}

variable "reserved_concurrency" {
  description = "Most concurrent front-door invocations (a ceiling on cost under a flood)."
  type        = number
  default     = 50
}

variable "memory_mb" {
  description = "Lambda memory (CPU scales with it)."
  type        = number
  default     = 512
}

variable "log_retention_days" {
  description = "Retention of the front door's log groups. They hold job ids, routes, statuses and limit events (never an address, a name, an IP or a query string): no personal data, kept a year for abuse investigations."
  type        = number
  default     = 365
}

variable "link_key_version" {
  description = "Bump to write a new random link key by hand (the previous key keeps verifying what it signed). Rotation is automatic (link_key_rotation_days); a manual bump between two scheduled rotations ends the links of the key before it early."
  type        = number
  default     = 1
}

variable "link_key_rotation_days" {
  description = "Days between automatic rotations of the link key (null: 30, or results_retention_days + 1 when that is longer). At least one link lifetime plus a day (the front door verifies with the current and the previous key, so a link lives through one rotation, never two) and at least 15 days (a code email's manifest proof outlives SQS's longest retention)."
  type        = number
  default     = null # max(30, results_retention_days + 1)
  validation {
    condition     = var.link_key_rotation_days == null || try(var.link_key_rotation_days >= var.results_retention_days + 1 && var.link_key_rotation_days >= 15 && var.link_key_rotation_days <= 1000 && floor(var.link_key_rotation_days) == var.link_key_rotation_days, false)
    error_message = "link_key_rotation_days must be whole days, at least results_retention_days + 1 and at least 15 (at most 1000): a shorter period would end links before the date their email states."
  }
}

variable "generate_link_key" {
  description = "Generate a random link key (true), or write var.link_key (false: bring your own)."
  type        = bool
  default     = true
}

variable "link_key" {
  description = "Your own link key (at least 32 characters) when generate_link_key is false: written write-only, never in state."
  type        = string
  default     = null
  sensitive   = true
  validation {
    condition     = var.link_key == null || length(coalesce(var.link_key, "-")) >= 32
    error_message = "link_key must be at least 32 characters (the HMAC's strength; the front door and the worker refuse a shorter key too)."
  }
  validation {
    condition     = var.generate_link_key || var.link_key != null
    error_message = "Pass link_key when generate_link_key is false."
  }
}

variable "secret_recovery_window_days" {
  description = "Secrets Manager recovery window of the link key when destroyed (0: delete at once)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
