"""Start the whole local mesh (`make run`) on free ports for a benchmark, and stop it afterwards."""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.local_mesh import LocalMesh
from tests.support.local_mesh import running_mesh as running_local_mesh


@contextlib.contextmanager
def running_mesh(timeout: float = 900, env: Mapping[str, str] | None = None, tls: bool = True) -> Iterator[LocalMesh]:
    """`make run` on free ports (plus `env` settings) in a scratch state/data folder; yields once SERVING.
    Mesh mTLS as `make run` has it, unless tls is False."""
    with tempfile.TemporaryDirectory() as tmp, \
            running_local_mesh(Path(tmp, "state"), Path(tmp, "data"), dict(env or {}), timeout, tls) as mesh:
        yield mesh
