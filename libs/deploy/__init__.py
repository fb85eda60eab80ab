"""Deployment tooling: image requirements and health probes, the local base image, `make compose-test`,
and the k8s copies of the observability files. Nothing here is imported by a running service."""
