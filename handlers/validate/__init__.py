"""The photo quality gate: per-photo checks, identity agreement across photos, plain-words reasons."""
