"""PHI recognizers for every HIPAA Safe Harbor category, as small Presidio recognizer classes.

Each module holds the recognizers of one concern (identifiers, dates, geography, names,
facilities); `services.compliance.core.recognizers` registers them with Presidio's own.
"""
