"""`make run`: the local mesh under supervisord, with a dev API key, a readiness report and an ordered drain."""
