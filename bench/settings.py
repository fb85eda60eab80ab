"""The benchmarks' own settings (env `MEDAI_BENCH_*`), and the environment of processes they start."""
from __future__ import annotations

import os

from pydantic_settings import BaseSettings, SettingsConfigDict


class BenchSettings(BaseSettings):
    """`MEDAI_BENCH_QUICK=1`: a few iterations only (a smoke run; not figures to report)."""

    model_config = SettingsConfigDict(env_prefix="MEDAI_BENCH_", extra="ignore")

    quick: bool = False


def quick() -> bool:
    return BenchSettings().quick


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `extra`, for a service a benchmark starts."""
    return os.environ | extra
