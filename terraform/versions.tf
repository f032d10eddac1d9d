terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
  # Remote state in S3 with S3-native locking, configured per environment at init time
  # (partial configuration: docs/deploy.md). Offline checks and tests use -backend=false.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}
