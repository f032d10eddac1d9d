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
  description = "New jobs one client (IP; /64 for IPv6) may start per hour."
  type        = number
  default     = 10
}

variable "jobs_per_address_per_day" {
  description = "New jobs one email address may start per day."
  type        = number
  default     = 5
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
  description = "Retention of the front door's log group."
  type        = number
  default     = 365
}

variable "link_key_version" {
  description = "Bump to write a new random link key (rotation: the previous key keeps verifying what it signed)."
  type        = number
  default     = 1
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
