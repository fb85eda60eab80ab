"""PHI de-identification benchmark: datasets (shared public set, generated clinical notes) and scoring."""
