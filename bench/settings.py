"""The benchmarks' own settings (env `MEDAI_BENCH_*`), and the environment of processes they start."""
from __future__ import annotations

import os

from pydantic_settings import BaseSettings, SettingsConfigDict


class BenchSettings(BaseSettings):
    """`MEDAI_BENCH_QUICK=1`: a few iterations only (a smoke run; not figures to report)."""

    model_config = SettingsConfigDict(env_prefix="MEDAI_BENCH_", extra="ignore")

    quick: bool = False
    # `python -m bench cpu` only: the scenarios to run, comma-separated (empty: all).
    cpu_scenarios: str = ""


def quick() -> bool:
    return BenchSettings().quick


def cpu_scenarios() -> set[str]:
    """The CPU bench's scenarios asked for by name (`MEDAI_BENCH_CPU_SCENARIOS`); empty: all of them."""
    return {name.strip() for name in BenchSettings().cpu_scenarios.split(",") if name.strip()}


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `extra`, for a service a benchmark starts."""
    return os.environ | extra
