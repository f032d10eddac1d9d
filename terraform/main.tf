# The headshot service on AWS: the data path (storage_messaging, which can be applied alone),
# the GPU workers (compute) that consume it, and the front door (a Lambda behind a function
# URL: upload page, status, gallery, the emailed links, ratings).

locals {
  name_prefix = "headshots-${var.environment}"
}

module "storage_messaging" {
  source = "./modules/storage_messaging"

  name_prefix          = local.name_prefix
  email_sender         = var.email_sender
  ses_domain           = var.ses_domain
  cors_allowed_origins = [] # the front door module sets the input bucket's CORS (its origin first)
  upload_expiry_days   = var.upload_expiry_days
  result_expiry_days   = var.result_expiry_days
  visibility_timeout_s = var.visibility_timeout_s
  max_receive_count    = var.max_receive_count
  oldest_message_sla_s = var.oldest_message_sla_s
  alarm_actions        = var.alarm_actions
}

module "compute" {
  source = "./modules/compute"

  name_prefix                     = local.name_prefix
  vpc_id                          = var.vpc_id
  subnet_ids                      = var.subnet_ids
  instance_types                  = var.instance_types
  on_demand_percentage_above_base = var.on_demand_percentage_above_base
  min_workers                     = var.min_workers
  max_workers                     = var.max_workers
  backlog_per_worker              = var.backlog_per_worker
  container_image                 = var.container_image
  image_tag                       = var.image_tag
  base_model                      = var.base_model
  model_cache_host_path           = var.model_cache_host_path
  alarm_actions                   = var.alarm_actions

  worker_settings       = merge(module.storage_messaging.worker_settings, module.frontdoor.worker_settings)
  input_bucket_arn      = module.storage_messaging.input_bucket_arn
  output_bucket_arn     = module.storage_messaging.output_bucket_arn
  queue_arn             = module.storage_messaging.queue_arn
  queue_name            = module.storage_messaging.queue_name
  kms_key_arn           = module.storage_messaging.kms_key_arn
  ses_identity_arn      = module.storage_messaging.ses_identity_arn
  ses_configuration_set = module.storage_messaging.ses_configuration_set
  email_sender          = var.email_sender
}

module "frontdoor" {
  source = "./modules/frontdoor"

  name_prefix  = local.name_prefix
  package_path = coalesce(var.frontdoor_package, "${path.root}/../build/frontdoor.zip") # scripts/build-frontdoor-zip.sh
  public_url   = var.frontdoor_public_url
  # The emailed links live exactly as long as results/ are kept (the bucket lifecycle).
  results_retention_days = var.result_expiry_days
  input_bucket_name      = module.storage_messaging.HEADSHOTS_INPUT_BUCKET
  input_bucket_arn       = module.storage_messaging.input_bucket_arn
  output_bucket_name     = module.storage_messaging.HEADSHOTS_OUTPUT_BUCKET
  output_bucket_arn      = module.storage_messaging.output_bucket_arn
  kms_key_arn            = module.storage_messaging.kms_key_arn
  worker_role_name       = module.compute.task_role_name
  extra_upload_origins   = var.cors_allowed_origins
}
