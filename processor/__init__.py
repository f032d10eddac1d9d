"""The service runtime: settings, queue, job store, S3, email, CLI, embedded local stack."""
