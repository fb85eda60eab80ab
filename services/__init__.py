"""The mesh services; each is a package runnable as `python -m services.<name>`."""
