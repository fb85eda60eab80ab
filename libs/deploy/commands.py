"""Running the tools the deployment scripts drive (docker, compose, apt, debootstrap), with logs."""
from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("medai.deploy")


class DeployError(RuntimeError):
    """A deployment step failed; the message says which and why."""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run(argv: Sequence[str], *, cwd: Path | None = None, check: bool = True,
        timeout: float | None = None, log_file: Path | None = None, stdin: bytes | None = None) -> Result:
    """Run a command; its output goes to `log_file` when given (long builds), else it is captured."""
    started = time.monotonic()
    log.debug("run: %s", shlex.join(argv))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as sink:
            completed = subprocess.run(argv, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                       input=stdin, timeout=timeout, check=False)
        stdout, stderr = "", ""
    else:
        completed = subprocess.run(argv, cwd=cwd, capture_output=True, input=stdin, timeout=timeout,
                                   check=False)
        stdout, stderr = completed.stdout.decode(errors="replace"), completed.stderr.decode(errors="replace")
    result = Result(completed.returncode, stdout, stderr, time.monotonic() - started)
    if check and result.returncode != 0:
        where = f" (log: {log_file})" if log_file else f": {tail(stderr or stdout)}"
        raise DeployError(f"`{shlex.join(argv[:4])}…` exited {result.returncode}{where}")
    return result


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
