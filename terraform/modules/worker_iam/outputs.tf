output "role_arn" {
  description = "ARN of the worker's task role."
  value       = aws_iam_role.task.arn
}

output "role_name" {
  description = "Name of the worker's task role."
  value       = aws_iam_role.task.name
}

output "policy_json" {
  description = "The task role's inline policy document as Terraform renders it (JSON): what the worker's code may do. Tests read it (known at plan time once the ARNs are)."
  value       = jsonencode(local.task_policy)
}

output "trust_policy_json" {
  description = "Who may assume the role (JSON): ECS tasks of this account, plus test_trusted_principals in tests only."
  value       = jsonencode(local.trust_policy)
}
