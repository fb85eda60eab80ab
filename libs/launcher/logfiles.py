"""serving.log and error.log under `make run`: the launcher is their one writer.

Every supervised process logs JSON lines to its stderr, which supervisord passes to its own stdout;
the launcher reads that stream, shows it on its own stdout as before, and writes each line to
serving.log and, for WARNING and up, to error.log (both rotated by `logging.handlers`). One writer
per file is what makes size rotation safe: several processes rotating one file would keep writing
to the renamed copy. A line that is not a JSON object (supervisord's own messages, a traceback printed
before logging was set up, a progress bar) is wrapped into one: a WARNING when it names a problem
(so error.log has it), else INFO.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import TextIO

from libs.logs import ERROR_LOG, SERVING_LOG, LineFile, LogFiles

ERROR_LEVELS = frozenset({"WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"})
# Plain-text lines that report a problem (supervisord's CRIT/ERROR/WARN, Python tracebacks and errors).
_PROBLEM = re.compile(r"\b(CRIT|CRITICAL|ERROR|FATAL|WARN|WARNING)\b|Traceback \(most recent call last\)"
                      r"|^\s*[A-Za-z_.]*(Error|Exception)\b")


def as_json_line(text: str) -> tuple[str, str]:
    """(the line as a JSON object, its level in upper case)."""
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if isinstance(record, dict):
        return text, str(record.get("level", "")).upper()
    level = "WARNING" if _PROBLEM.search(text) else "INFO"
    now = datetime.now()
    wrapped = {"time": f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}", "level": level,
               "logger": "stdout", "message": text}
    return json.dumps(wrapped), level


class OutputCollector:
    """Copies lines to `echo` and into serving.log and error.log."""

    def __init__(self, files: LogFiles, echo: TextIO) -> None:
        self._serving = LineFile(files, SERVING_LOG)
        self._errors = LineFile(files, ERROR_LOG)
        self._echo = echo

    def collect(self, text: str) -> None:
        if not text.strip():
            return
        line, level = as_json_line(text)
        self._serving.write(line)
        if level in ERROR_LEVELS:
            self._errors.write(line)

    def run(self, lines: Iterable[str]) -> None:
        """Until the stream ends (supervisord exited); then the files are closed."""
        try:
            for line in lines:
                self._echo.write(line)
                self._echo.flush()
                self.collect(line.rstrip("\n"))
        finally:
            self._serving.close()
            self._errors.close()
