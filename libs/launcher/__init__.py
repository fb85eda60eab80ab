"""`make run`: the local mesh under honcho, with a dev API key and a readiness report."""
