"""The analysis sandbox: a forkserver pool of child processes that run the engine under limits."""
