variable "name_prefix" {
  description = "Prefix of the role's name (the compute module's name_prefix)."
  type        = string
  default     = "headshots"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "cluster_name" {
  description = "ECS cluster of the workers: the task may set scale-in protection on its own tasks there."
  type        = string
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
  description = "ARN of the job queue's dead-letter queue (the worker sweeps it)."
  type        = string
}

variable "link_secret_arn" {
  description = "The front door's link key in Secrets Manager: the worker reads it to sign the links it emails (null: no front door)."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "Customer key of the buckets and queues."
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

variable "test_trusted_principals" {
  description = "TESTS ONLY: extra IAM principal ARNs that may assume the role (e.g. the offline moto account's root, so a test worker runs under exactly this role). Empty in every real deployment: the compute module never sets it, and production trust is ECS tasks only."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.test_trusted_principals : can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:", p))])
    error_message = "test_trusted_principals must be IAM or STS principal ARNs."
  }
}

variable "tags" {
  description = "Tags added to the role."
  type        = map(string)
  default     = {}
}
