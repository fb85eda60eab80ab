"""The monitor's domain logic (no gRPC): health book-keeping, alerts, system readings, relabelling."""
