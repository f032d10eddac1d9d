"""Pipeline stages: plain functions over local files and config values. Never imports AWS SDKs."""
