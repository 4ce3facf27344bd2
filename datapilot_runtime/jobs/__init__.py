"""Job records and the job queue in Redis, and their proto mapping."""
