"""gRPC plumbing shared by every service: server bootstrap, status mapping, channels, context."""
