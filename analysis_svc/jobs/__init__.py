"""Job execution in the worker process: claiming, input fetch, running and publishing a job."""
