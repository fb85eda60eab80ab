"""The benchmarks' accounting: CPU time read from /proc, processes told apart by marker and command line,
py-spy stacks summarised, clinical-content utility scored."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from bench import cpu
from bench.phi.scoring import Sample, Span, Utility, score


def test_cpu_seconds_of_a_process_grow_with_its_work():
    before = cpu.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu.cpu_seconds(os.getpid()) - before >= 0.15
    assert cpu.cpu_seconds(2**22 + 12345) is None  # no such process


def test_marked_processes_are_found_and_told_apart_by_command_line():
    marker = uuid.uuid4().hex
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             env=os.environ | {"MEDAI_TEST_MARKER": marker})
    try:
        assert cpu.mesh_processes(marker) == {child.pid: cpu.OTHER}
    finally:
        child.communicate(b"")
    assert cpu.mesh_processes(marker) == {}


def test_a_profile_is_summarised_by_own_time_project_functions_and_package():
    root = cpu._ROOT
    lines = [
        f"main (x) (<frozen runpy>:1);run_service ({root}libs/service.py:9);"
        f"analyze ({root}services/compliance/core/presidio.py:88);"
        "gemm (/v/lib/python3.11/site-packages/thinc/ops.py:91) 6",
        f"main (x) (<frozen runpy>:1);write ({root}services/compliance/core/audit.py:40);"
        "iterencode (/usr/lib/python3.11/json/encoder.py:200) 4",
    ]
    summary = cpu.summarise_profile(lines)
    assert summary["samples"] == 10
    assert summary["top_own_time_percent"][0] == ("gemm (thinc/ops.py)", 60.0)
    project = summary["top_project_functions_inclusive_percent"]
    assert ("analyze (services/compliance/core/presidio.py)", 60.0) in project
    assert dict(summary["by_package_inclusive_percent"]) == {"thinc": 60.0, "services/compliance/core": 100.0,
                                                             "stdlib/json": 40.0}


def test_utility_counts_clinical_content_left_intact():
    text = "Pt Ann Lee on metformin 500 mg, Room 12."
    dose = Span("CLINICAL", text.index("metformin"), text.index(","))
    sample = Sample(text, (Span("NAME", 3, 10),), "0", (dose, Span("CLINICAL", 32, 39)))
    utility = Utility()
    score([sample], lambda texts: [[Span("PERSON", 3, 10), Span("LOCATION", 32, 39)]],
          relevant=lambda s, span: span.label, category=lambda t: t, utility=utility)
    assert (utility.intact, utility.total, utility.share) == (1, 2, 0.5)
