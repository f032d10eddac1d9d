# The headshot service on AWS: the data path (storage_messaging, which can be applied alone),
# the GPU workers (compute) that consume it, and the front door (a Lambda behind a function
# URL: upload page, status, gallery, the emailed links, ratings).

locals {
  name_prefix = "headshots-${var.environment}"
  # The provider's default_tags, passed on too: ASG-launched instances and their volumes are
  # not created by Terraform, so only the launch template and the group can tag them.
  tags = merge({ service = "headshots", environment = var.environment }, var.tags)
}

module "storage_messaging" {
  source = "./modules/storage_messaging"

  name_prefix            = local.name_prefix
  email_sender           = var.email_sender
  ses_domain             = var.ses_domain
  cors_allowed_origins   = [] # the front door module sets the input bucket's CORS (its origin first)
  upload_expiry_days     = var.upload_expiry_days
  results_retention_days = var.results_retention_days
  visibility_timeout_s   = var.visibility_timeout_s
  heartbeat_interval_s   = var.heartbeat_interval_s
  owner_stale_after_s    = var.owner_stale_after_s
  max_job_duration_s     = var.max_job_duration_s
  max_receive_count      = var.max_receive_count
  oldest_message_sla_s   = var.oldest_message_sla_s
  alarm_actions          = var.alarm_actions
  alarm_email            = var.alarm_email
  tags                   = local.tags
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
  worker_warmup_s                 = var.worker_warmup_s
  container_image                 = var.container_image
  image_tag                       = var.image_tag
  base_model                      = var.base_model
  model_cache_host_path           = var.model_cache_host_path
  alarm_actions                   = concat([module.storage_messaging.alarm_topic_arn], var.alarm_actions)
  tags                            = local.tags

  worker_settings       = merge(module.storage_messaging.worker_settings, module.frontdoor.worker_settings)
  input_bucket_arn      = module.storage_messaging.input_bucket_arn
  output_bucket_arn     = module.storage_messaging.output_bucket_arn
  queue_arn             = module.storage_messaging.queue_arn
  dlq_arn               = module.storage_messaging.dlq_arn
  link_secret_arn       = module.frontdoor.link_secret_arn
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
  results_retention_days = var.results_retention_days
  input_bucket_name      = module.storage_messaging.HEADSHOTS_INPUT_BUCKET
  input_bucket_arn       = module.storage_messaging.input_bucket_arn
  output_bucket_name     = module.storage_messaging.HEADSHOTS_OUTPUT_BUCKET
  output_bucket_arn      = module.storage_messaging.output_bucket_arn
  kms_key_arn            = module.storage_messaging.kms_key_arn
  extra_upload_origins   = var.cors_allowed_origins
  # The code email that proves an address goes out as the service's sender, through its identity.
  email_sender                = var.email_sender
  ses_identity_arn            = module.storage_messaging.ses_identity_arn
  ses_configuration_set       = module.storage_messaging.ses_configuration_set
  trusted_proxy               = var.frontdoor_trusted_proxy
  cloudfront_distribution_arn = var.frontdoor_cloudfront_distribution_arn
  alarm_actions               = concat([module.storage_messaging.alarm_topic_arn], var.alarm_actions)
}
