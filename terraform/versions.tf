terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
  # Configure a remote backend (S3 + lock) per environment with `terraform init -backend-config=...`.
}

provider "aws" {
  region = var.region
  default_tags {
    tags = merge({ service = "headshots", environment = var.environment }, var.tags)
  }
}
