variable "region" {
  description = "AWS region of the whole deployment (it needs GPU instances and SES)."
  type        = string
  default     = "us-east-1"
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "environment" {
  description = "Environment name, part of every resource name (e.g. prod, staging)."
  type        = string
  default     = "prod"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits."
  }
}

variable "email_sender" {
  description = "From address of every email; verified in SES (as itself, or through ses_domain)."
  type        = string
}

variable "ses_domain" {
  description = "Domain to verify in SES with Easy DKIM (null: verify email_sender alone)."
  type        = string
  default     = null
}

variable "cors_allowed_origins" {
  description = "Web origins allowed to upload photos from the browser besides the front door's own (which always is)."
  type        = list(string)
  default     = []
}

variable "upload_expiry_days" {
  description = "Lifecycle expiry of uploads/ (the worker deletes them after delivery; this is the backstop)."
  type        = number
  default     = 7
}

variable "results_retention_days" {
  description = "Days results/ are kept (lifecycle); download links live exactly as long."
  type        = number
  default     = 7
}

variable "visibility_timeout_s" {
  description = "Job queue visibility timeout V (the worker heartbeats to extend it); V >= 3 x heartbeat_interval_s."
  type        = number
  default     = 120
}

variable "heartbeat_interval_s" {
  description = "Worker heartbeat H (visibility and lease renewal), seconds."
  type        = number
  default     = 30
}

variable "owner_stale_after_s" {
  description = "Owner staleness S before a job is taken over (>= 2H); null derives V - 2H."
  type        = number
  default     = null
}

variable "max_job_duration_s" {
  description = "Past this a job ends failed, with its email; longer than visibility_timeout_s."
  type        = number
  default     = 10800
}

variable "max_receive_count" {
  description = "Attempts before a job message is dead-lettered."
  type        = number
  default     = 3
}

variable "oldest_message_sla_s" {
  description = "Alarm threshold for the age of the oldest waiting job, in seconds."
  type        = number
  default     = 1800
}

variable "alarm_email" {
  description = "Email subscribed to the alarm topic that every operator alarm notifies (null: none)."
  type        = string
  default     = null
}

variable "alarm_actions" {
  description = "Extra ARNs notified by every operator alarm, besides the created alarm topic."
  type        = list(string)
  default     = []
}

variable "vpc_id" {
  description = "VPC of the GPU workers."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the GPU workers (egress to AWS APIs through NAT or endpoints)."
  type        = list(string)
}

variable "instance_types" {
  description = "GPU instance types in order of preference (24-48 GB GPUs by default)."
  type        = list(string)
  default     = ["g6e.xlarge", "g5.2xlarge", "g6.2xlarge"]
}

variable "on_demand_percentage_above_base" {
  description = "Share of GPU instances bought on demand; the rest is spot."
  type        = number
  default     = 25
}

variable "min_workers" {
  description = "Fewest GPU workers (0: scale to zero when idle)."
  type        = number
  default     = 0
}

variable "max_workers" {
  description = "Most GPU workers (one job each). Size it with bench/capacity.py: ~225 for 1000 jobs/hour at 13.5 GPU-minutes per job; 4 does not hold 100 jobs/hour."
  type        = number
  default     = 4
}

variable "backlog_per_worker" {
  description = "Target jobs (waiting plus running) per worker."
  type        = number
  default     = 1
}

variable "worker_warmup_s" {
  description = "Seconds from asking for a GPU worker to its first job (instance boot + image pull; 4-10 min published): the wake-from-zero cooldown and the instance warm-up."
  type        = number
  default     = 600
}

variable "container_image" {
  description = "Worker image reference; null uses the created ECR repository with image_tag."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Tag pushed to the created ECR repository."
  type        = string
  default     = "0.1.0"
}

variable "base_model" {
  description = "HEADSHOTS_BASE_MODEL: by default the SDXL weights baked into the image (/opt/headshots/models/base); a Hugging Face id downloads them at every cold start."
  type        = string
  default     = "/opt/headshots/models/base"
}

variable "model_cache_host_path" {
  description = "Folder on each GPU instance that caches models and class images between tasks."
  type        = string
  default     = "/var/lib/headshots/cache"
}

variable "frontdoor_package" {
  description = "The front door's Lambda zip (scripts/build-frontdoor-zip.sh); null: build/frontdoor.zip."
  type        = string
  default     = null
}

variable "frontdoor_public_url" {
  description = "Public https:// URL of the front door when a custom domain fronts it (null: its function URL)."
  type        = string
  default     = null
}

variable "frontdoor_trusted_proxy" {
  description = "\"cloudfront\" when a CloudFront distribution fronts the function URL (the URL then answers it alone and its viewer-address header counts clients); \"none\" otherwise."
  type        = string
  default     = "none"
}

variable "frontdoor_cloudfront_distribution_arn" {
  description = "That distribution, when frontdoor_trusted_proxy is \"cloudfront\"."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
