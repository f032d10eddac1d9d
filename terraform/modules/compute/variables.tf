variable "name_prefix" {
  description = "Prefix of every resource name; must match the storage_messaging module's (the key policy scopes log groups by it)."
  type        = string
  default     = "headshots"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the GPU instances and worker tasks."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Private subnets (with a NAT or VPC endpoints for S3, SQS, SES, ECR, logs) for instances and tasks; several AZs widen spot capacity."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must be a non-empty list of subnet-... ids."
  }
}

variable "instance_types" {
  description = "GPU instance types, in order of preference; the first is the on-demand type. Defaults are 24-48 GB GPUs (L40S 48 GB, A10G 24 GB, L4 24 GB) with one GPU each."
  type        = list(string)
  default     = ["g6e.xlarge", "g5.2xlarge", "g6.2xlarge"]
  validation {
    condition     = length(var.instance_types) > 0 && alltrue([for t in var.instance_types : can(regex("^(g5|g6|g6e|gr6|p3|p4d|p4de|p5|p5e)\\.[0-9]*x?large$", t))])
    error_message = "instance_types must be x86_64 NVIDIA GPU instance types (g5, g6, g6e, gr6, p3, p4d, p5 families)."
  }
  validation {
    # g5g (Graviton + T4G) has NVIDIA GPUs too, but the ECS GPU AMI and the worker image are x86_64.
    condition     = alltrue([for t in var.instance_types : !can(regex("^[a-z]+[0-9]+[a-z]*g[a-z]*\\.", t))])
    error_message = "Arm (Graviton) instance types such as g5g are refused: the ECS GPU AMI and the worker image are x86_64."
  }
}

variable "on_demand_base_capacity" {
  description = "Instances always bought on demand before spot is used (0: all capacity may be spot)."
  type        = number
  default     = 0
  validation {
    condition     = var.on_demand_base_capacity >= 0
    error_message = "on_demand_base_capacity must be >= 0."
  }
}

variable "on_demand_percentage_above_base" {
  description = "Percentage of instances above the base bought on demand; the rest is spot (interrupted jobs resume from checkpoints)."
  type        = number
  default     = 25
  validation {
    condition     = var.on_demand_percentage_above_base >= 0 && var.on_demand_percentage_above_base <= 100
    error_message = "on_demand_percentage_above_base must be between 0 and 100."
  }
}

variable "min_workers" {
  description = "Fewest worker tasks (one job per GPU); 0 lets an idle service cost nothing."
  type        = number
  default     = 0
  validation {
    condition     = var.min_workers >= 0 && floor(var.min_workers) == var.min_workers
    error_message = "min_workers must be a whole number >= 0."
  }
}

variable "max_workers" {
  description = "Most worker tasks, and so most GPU instances."
  type        = number
  default     = 4
  validation {
    condition     = var.max_workers >= 1 && var.max_workers >= var.min_workers && var.max_workers <= 1000 && floor(var.max_workers) == var.max_workers
    error_message = "max_workers must be a whole number between max(1, min_workers) and 1000 (bench/capacity.py sizes it: ~225 for 1000 jobs/hour at 13.5 GPU-minutes per job)."
  }
}

variable "backlog_per_worker" {
  description = "Target jobs (waiting plus running) per worker task; 1 means scale until every job has its own GPU."
  type        = number
  default     = 1
  validation {
    condition     = var.backlog_per_worker > 0 && var.backlog_per_worker <= 100
    error_message = "backlog_per_worker must be > 0 and <= 100."
  }
}

variable "container_image" {
  description = "Worker image (repository:tag or @digest); null uses this module's ECR repository with image_tag."
  type        = string
  default     = null
  validation {
    condition     = var.container_image == null || can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.container_image))
    error_message = "container_image must name a tag or a digest."
  }
}

variable "image_tag" {
  description = "Tag of the image in this module's ECR repository (tags are immutable: push a new tag per release)."
  type        = string
  default     = "0.1.0"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,128}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a tag other than latest (the repository's tags are immutable)."
  }
}

variable "base_model" {
  description = "HEADSHOTS_BASE_MODEL. Default: the SDXL weights baked into the image at /opt/headshots/models/base (Dockerfile BAKE_BASE_MODEL), so no boot downloads them. A Hugging Face id instead downloads them into the instance's model cache at every cold start (the cache dies with the instance)."
  type        = string
  default     = "/opt/headshots/models/base"
  validation {
    condition     = startswith(var.base_model, "/") || can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$", var.base_model))
    error_message = "base_model must be an absolute path in the image or a Hugging Face id (owner/name)."
  }
}

variable "model_cache_host_path" {
  description = "Folder on each GPU instance that keeps downloaded models and class-prior images between tasks."
  type        = string
  default     = "/var/lib/headshots/cache"
  validation {
    condition     = startswith(var.model_cache_host_path, "/")
    error_message = "model_cache_host_path must be absolute."
  }
}

variable "model_cache_container_path" {
  description = "Where the model cache is mounted in the container (HF_HOME and the class-image cache live under it)."
  type        = string
  default     = "/cache"
  validation {
    condition     = startswith(var.model_cache_container_path, "/")
    error_message = "model_cache_container_path must be absolute."
  }
}

variable "root_volume_gb" {
  description = "Encrypted root volume per instance: image layers, model cache and job scratch space."
  type        = number
  default     = 200
  validation {
    condition     = var.root_volume_gb >= 100 && var.root_volume_gb <= 2000
    error_message = "root_volume_gb must be between 100 and 2000 (SDXL weights, CUDA image and scratch need >= 100)."
  }
}

variable "task_memory_mib" {
  description = "Memory reserved for the worker container (hard limit is the instance)."
  type        = number
  default     = 28000
  validation {
    condition     = var.task_memory_mib >= 8192
    error_message = "task_memory_mib must be at least 8192."
  }
}

variable "log_retention_days" {
  description = "Retention of the worker's CloudWatch logs (they carry no emails, photos or embeddings)."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (e.g. 30, 90, 365)."
  }
}

variable "worker_settings" {
  description = "HEADSHOTS_* environment of the worker (storage_messaging's worker_settings output, plus any overrides)."
  type        = map(string)
  validation {
    condition     = alltrue([for k in keys(var.worker_settings) : startswith(k, "HEADSHOTS_")])
    error_message = "worker_settings keys must be HEADSHOTS_* settings."
  }
}

variable "input_bucket_arn" {
  description = "ARN of the input bucket (the task reads and deletes uploads/)."
  type        = string
}

variable "output_bucket_arn" {
  description = "ARN of the output bucket (the task reads and writes jobs/ and results/)."
  type        = string
}

variable "queue_arn" {
  description = "ARN of the job queue."
  type        = string
}

variable "dlq_arn" {
  description = "ARN of the job queue's dead-letter queue (the worker's sweeper reads it)."
  type        = string
}

variable "link_secret_arn" {
  description = "The front door's link key (Secrets Manager): the worker's role may read it (null: no front door)."
  type        = string
  default     = null
}

variable "queue_name" {
  description = "Name of the job queue (CloudWatch dimension of the backlog metrics)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer key of the buckets, queues and log group."
  type        = string
}

variable "ses_identity_arn" {
  description = "SES identity the task may send from."
  type        = string
}

variable "ses_configuration_set" {
  description = "SES configuration set name the identity uses by default."
  type        = string
}

variable "email_sender" {
  description = "The only From address the task may use."
  type        = string
}

variable "alarm_actions" {
  description = "ARNs notified by the operator alarms (the storage module's alarm topic, from the root)."
  type        = list(string)
  default     = []
}

variable "no_worker_alarm_minutes" {
  description = "Minutes the backlog may grow with no running worker before the alarm fires (longer than a GPU instance's cold start, worker_warmup_s)."
  type        = number
  default     = 15
  validation {
    condition     = var.no_worker_alarm_minutes >= 5 && var.no_worker_alarm_minutes <= 120 && var.no_worker_alarm_minutes * 60 > var.worker_warmup_s
    error_message = "no_worker_alarm_minutes must be between 5 and 120 and longer than worker_warmup_s (a cold start is not an outage)."
  }
}

variable "worker_warmup_s" {
  description = "Seconds from asking for a worker to its first job: GPU instance boot plus image pull (published figures: 4-10 min for a 15-20 GB image). The wake-from-zero step waits this long before adding again, and the capacity provider counts a new instance after it."
  type        = number
  default     = 600
  validation {
    condition     = var.worker_warmup_s >= 60 && var.worker_warmup_s <= 3600
    error_message = "worker_warmup_s must be between 60 and 3600."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "job_failure_rate_threshold" {
  description = "Alarm when more than this share of the jobs that ended in an hour failed (0-1)."
  type        = number
  default     = 0.2
  validation {
    condition     = var.job_failure_rate_threshold > 0 && var.job_failure_rate_threshold < 1
    error_message = "job_failure_rate_threshold must be between 0 and 1."
  }
}

variable "job_failure_rate_min_jobs" {
  description = "Jobs that must have ended in the hour before the failure rate can alarm (one failure of one job is not a rate)."
  type        = number
  default     = 5
  validation {
    condition     = var.job_failure_rate_min_jobs >= 1 && floor(var.job_failure_rate_min_jobs) == var.job_failure_rate_min_jobs
    error_message = "job_failure_rate_min_jobs must be a whole number >= 1."
  }
}

variable "task_failure_alarm_count" {
  description = "Alarm when at least this many worker tasks failed (could not start, or exited non-zero) in 5 minutes."
  type        = number
  default     = 1
  validation {
    condition     = var.task_failure_alarm_count >= 1
    error_message = "task_failure_alarm_count must be >= 1."
  }
}
