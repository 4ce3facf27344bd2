"""ingest_svc: uploaded blobs, job artifacts and job records."""
