"""One job's records: its state machine and status.json, ownership, checkpoints, the attempt's context,
its uploads and published results."""
