# The worker's task role, offline (mock provider: nothing is created). The policy statements
# are pinned where they matter; the trust is ECS tasks only unless a test adds a principal.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
}

variables {
  cluster_name          = "headshots-gpu"
  input_bucket_arn      = "arn:aws:s3:::headshots-input-123456789012"
  output_bucket_arn     = "arn:aws:s3:::headshots-output-123456789012"
  queue_arn             = "arn:aws:sqs:us-east-1:123456789012:headshots-jobs"
  dlq_arn               = "arn:aws:sqs:us-east-1:123456789012:headshots-jobs-dlq"
  kms_key_arn           = "arn:aws:kms:us-east-1:123456789012:key/0000"
  ses_identity_arn      = "arn:aws:ses:us-east-1:123456789012:identity/headshots@example.com"
  ses_configuration_set = "headshots-mail"
  email_sender          = "headshots@example.com"
}

run "production_trust_is_ecs_tasks_only" {
  command = plan
  assert {
    condition     = length(jsondecode(aws_iam_role.task.assume_role_policy).Statement) == 1
    error_message = "one trust statement without test principals"
  }
  assert {
    condition     = jsondecode(aws_iam_role.task.assume_role_policy).Statement[0].Principal == { Service = "ecs-tasks.amazonaws.com" }
    error_message = "only ECS tasks may assume the role"
  }
  assert {
    condition     = jsondecode(aws_iam_role.task.assume_role_policy).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012" && jsondecode(aws_iam_role.task.assume_role_policy).Statement[0].Condition.ArnLike["aws:SourceArn"] == "arn:aws:ecs:us-east-1:123456789012:*"
    error_message = "ECS tasks of this account and region only (confused-deputy conditions)"
  }
  assert {
    condition     = output.trust_policy_json == aws_iam_role.task.assume_role_policy
    error_message = "the trust output is the role's trust policy"
  }
}

run "test_principal_is_added_only_when_asked" {
  command = plan
  variables {
    test_trusted_principals = ["arn:aws:iam::123456789012:root"]
  }
  assert {
    condition     = length(jsondecode(aws_iam_role.task.assume_role_policy).Statement) == 2 && jsondecode(aws_iam_role.task.assume_role_policy).Statement[1].Principal == { AWS = "arn:aws:iam::123456789012:root" }
    error_message = "the test principal is a second statement next to ECS tasks"
  }
  assert {
    condition     = jsondecode(aws_iam_role.task.assume_role_policy).Statement[0].Principal == { Service = "ecs-tasks.amazonaws.com" }
    error_message = "ECS tasks keep their trust"
  }
}

run "policy_output_is_the_attached_policy" {
  command = plan
  assert {
    condition     = output.policy_json == aws_iam_role_policy.task.policy
    error_message = "policy_json is exactly the document attached to the role"
  }
  assert {
    condition     = aws_iam_role.task.name == "headshots-worker-task" && aws_iam_role_policy.task.name == "worker"
    error_message = "role and policy names are stable (state moved from the compute module keeps them)"
  }
}

run "task_role_is_least_privilege" {
  command = plan
  assert {
    condition     = alltrue([for s in jsondecode(output.policy_json).Statement : s.Effect == "Allow" && !contains(flatten([s.Action]), "*") && !contains(flatten([s.Resource]), "*")])
    error_message = "no wildcard actions or resources in the task role"
  }
  assert {
    condition     = one([for s in jsondecode(output.policy_json).Statement : s.Resource if s.Sid == "ReadAndRemoveUploads"]) == "arn:aws:s3:::headshots-input-123456789012/uploads/*"
    error_message = "the task reads only uploads/ of the input bucket"
  }
  assert {
    condition     = toset(one([for s in jsondecode(output.policy_json).Statement : s.Action if s.Sid == "OwnTaskScaleInProtection"])) == toset(["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"]) && one([for s in jsondecode(output.policy_json).Statement : s.Resource if s.Sid == "OwnTaskScaleInProtection"]) == "arn:aws:ecs:us-east-1:123456789012:task/headshots-gpu/*"
    error_message = "the worker may set scale-in protection on tasks of its own cluster only"
  }
  assert {
    condition     = one([for s in jsondecode(output.policy_json).Statement : s.Condition.StringEquals["ses:FromAddress"] if s.Sid == "SendAsConfiguredSender"]) == "headshots@example.com"
    error_message = "email only from the configured sender"
  }
  assert {
    condition     = contains(one([for s in jsondecode(output.policy_json).Statement : s.Resource if s.Sid == "SendAsConfiguredSender"]), "arn:aws:ses:us-east-1:123456789012:configuration-set/headshots-mail")
    error_message = "email through the module's configuration set"
  }
}

run "grants_what_the_code_calls_beyond_jobs_and_results" {
  command = plan
  assert {
    condition     = one([for s in jsondecode(output.policy_json).Statement : s.Resource if s.Sid == "ClassImageCache"]) == "arn:aws:s3:::headshots-output-123456789012/class-images/*"
    error_message = "the class-image cache lives under class-images/ of the output bucket"
  }
  assert {
    condition     = contains(one([for s in jsondecode(output.policy_json).Statement : s.Action if s.Sid == "ConsumeJobQueue"]), "sqs:SendMessage")
    error_message = "a handed-back job goes back to its queue as a fresh message"
  }
  assert {
    condition     = one([for s in jsondecode(output.policy_json).Statement : s.Resource if s.Sid == "SweepDeadLetters"]) == "arn:aws:sqs:us-east-1:123456789012:headshots-jobs-dlq"
    error_message = "the worker sweeps its own dead-letter queue"
  }
}

run "reads_the_front_doors_link_key_when_there_is_one" {
  command = plan
  variables {
    link_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots/frontdoor/link-key-AbCdEf"
  }
  assert {
    condition     = one([for s in jsondecode(output.policy_json).Statement : s if s.Sid == "ReadLinkKey"]) == { Sid = "ReadLinkKey", Effect = "Allow", Action = "secretsmanager:GetSecretValue", Resource = "arn:aws:secretsmanager:us-east-1:123456789012:secret:headshots/frontdoor/link-key-AbCdEf" }
    error_message = "the worker only reads the link key"
  }
}

run "rejects_a_test_principal_that_is_not_an_arn" {
  command = plan
  variables {
    test_trusted_principals = ["*"]
  }
  expect_failures = [var.test_trusted_principals]
}
