"""The local runner: starts the whole system as real processes on this machine."""
