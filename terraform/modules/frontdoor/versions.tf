terraform {
  # 1.9+: variable validations may refer to other variables.
  required_version = ">= 1.11" # write-only arguments (the link key)
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
}
