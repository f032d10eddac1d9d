output "cluster_name" {
  description = "ECS cluster of the GPU workers."
  value       = aws_ecs_cluster.gpu.name
}

output "service_name" {
  description = "ECS service of the workers."
  value       = aws_ecs_service.worker.name
}

output "ecr_repository_url" {
  description = "Push the worker image here (tag = image_tag)."
  value       = aws_ecr_repository.worker.repository_url
}

output "container_image" {
  description = "Image the task definition runs."
  value       = local.image
}

output "container_environment" {
  description = "Environment of the worker container."
  value       = local.container_environment
}

output "log_group_name" {
  description = "CloudWatch log group of the workers."
  value       = aws_cloudwatch_log_group.worker.name
}

output "task_role_arn" {
  description = "IAM role the worker code runs as."
  value       = module.worker_iam.role_arn
}

output "task_policy_json" {
  description = "The task role's policy document as rendered (JSON), from modules/worker_iam."
  value       = module.worker_iam.policy_json
}

output "capacity_provider_name" {
  description = "ECS capacity provider of the GPU Auto Scaling group."
  value       = aws_ecs_capacity_provider.gpu.name
}

output "task_role_name" {
  description = "Name of the worker's task role (the front door module grants it read of the link key)."
  value       = module.worker_iam.role_name
}
