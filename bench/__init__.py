"""Benchmarks (`make bench`): each measures the real mesh on this machine and reports figures, not verdicts."""
