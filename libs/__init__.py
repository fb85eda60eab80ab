"""Shared code of the MedServe mesh: config, logging, errors, RPC bootstrap, telemetry, stores."""
