"""Deployment assets: the local runner (Python), container image and Kubernetes manifests."""
