"""Static tests of the container image, the Kubernetes manifests and the compose file."""
