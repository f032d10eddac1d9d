"""The AWS edges: how clients are made and retried, S3, SQS, bulk transfers, ECS task protection."""
