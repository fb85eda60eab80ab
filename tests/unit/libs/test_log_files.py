"""The seed's log files: serving.log and error.log (a lone process, or the launcher collecting make run's
output), access.log (supervisord rotates Envoy's stdout), audit.log (a PHI-free line per record), each
JSON lines rotated by size with a bounded number of old files."""
from __future__ import annotations

import configparser
import io
import json
import logging
from pathlib import Path

import pytest

from libs.config import AppSettings, LauncherSettings
from libs.launcher.__main__ import log_files
from libs.launcher.logfiles import OutputCollector, as_json_line
from libs.launcher.supervision import ACCESS_LOG_PROGRAM, programs, read_procfile, render_config
from libs.logs import LineFile, LogFiles, configure_logging
from libs.stores.audit import new_event
from services.compliance.core.audit import audit_line

ROOT = Path(__file__).resolve().parents[3]


def files_in(directory: Path, base: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name == base or p.name.startswith(base + "."))


@pytest.fixture
def restore_logging():
    yield
    root = logging.getLogger()
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()


def test_a_lone_process_writes_serving_and_error_logs_that_rotate(tmp_path, restore_logging):
    files = LogFiles(tmp_path, max_bytes=2048, backup_count=2)
    configure_logging("gateway", "INFO", files)
    log = logging.getLogger("services.gateway")
    for index in range(200):
        log.info("call handled", extra={"index": index})
    log.warning("compliance unavailable")
    assert files_in(tmp_path, "serving.log") == ["serving.log", "serving.log.1", "serving.log.2"]  # retention: 2
    assert all((tmp_path / name).stat().st_size <= 2048 for name in files_in(tmp_path, "serving.log"))
    [error] = [json.loads(line) for line in (tmp_path / "error.log").read_text().splitlines()]
    assert (error["level"], error["message"], error["service"]) == ("WARNING", "compliance unavailable", "gateway")
    for line in (tmp_path / "serving.log").read_text().splitlines():
        assert json.loads(line)["service"] == "gateway"


def test_a_collected_process_logs_only_to_stderr(tmp_path, restore_logging, capsys):
    configure_logging("gateway", "INFO", LogFiles(tmp_path, 2048, 2, collected=True))
    logging.getLogger("x").warning("seen")
    assert list(tmp_path.iterdir()) == []
    assert json.loads(capsys.readouterr().err.splitlines()[-1])["message"] == "seen"


def test_the_launcher_collects_output_into_serving_and_error_logs_with_rotation(tmp_path):
    echo = io.StringIO()
    collector = OutputCollector(LogFiles(tmp_path, max_bytes=4096, backup_count=3), echo)
    info = json.dumps({"level": "INFO", "message": "listening", "service": "gateway"})
    warning = json.dumps({"level": "warning", "message": "upstream reset", "service": "envoy"})
    lines = [info + "\n"] * 300 + [warning + "\n", "Traceback (most recent call last):\n", "Loading weights: 5%\n"]
    collector.run(iter(lines))
    assert echo.getvalue() == "".join(lines)  # shown as before
    assert files_in(tmp_path, "serving.log") == ["serving.log", "serving.log.1", "serving.log.2", "serving.log.3"]
    errors = [json.loads(line) for line in (tmp_path / "error.log").read_text().splitlines()]
    assert [e["message"] for e in errors] == ["upstream reset", "Traceback (most recent call last):"]
    last = [json.loads(line) for line in (tmp_path / "serving.log").read_text().splitlines()][-1]
    assert (last["level"], last["logger"], last["message"]) == ("INFO", "stdout", "Loading weights: 5%")


def test_plain_lines_are_wrapped_as_json():
    line, level = as_json_line("2024-01-01 CRIT Supervisor is running as root")
    assert level == "WARNING" and json.loads(line)["message"].endswith("running as root")
    assert as_json_line('{"level": "error", "message": "x"}') == ('{"level": "error", "message": "x"}', "ERROR")


def test_audit_lines_hold_the_records_fields_only_and_rotate(tmp_path):
    audit = LineFile(LogFiles(tmp_path, max_bytes=1024, backup_count=1), "audit.log")
    event = new_event("predict", "success", request_id="r1", principal_id="abc", role="clinician",
                      model_id="m", purpose="Patient Jane Roe asked", phi_entity_counts={"PERSON": 1},
                      input_digest="d" * 64)
    for _ in range(10):
        audit.write(audit_line(event, "database"))
    audit.close()
    assert files_in(tmp_path, "audit.log") == ["audit.log", "audit.log.1"]
    record = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert (record["log"], record["destination"], record["action"], record["phi_entity_counts"]) == (
        "audit", "database", "predict", {"PERSON": 1})
    assert record["purpose"] == ""  # free text a client chose: not a plain token, so left out
    assert "Jane" not in (tmp_path / "audit.log").read_text()


def config(log_dir: Path | None) -> configparser.ConfigParser:
    files = LogFiles(log_dir, 4096, 7, collected=True) if log_dir else None
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render_config(programs(read_procfile(ROOT / "Procfile"), python="/venv/bin/python"),
                                     state_dir=Path("/state"), drain_seconds=30, events_command="events",
                                     log_files=files))
    return parser


def test_envoy_is_told_to_write_access_log_and_processes_where_logs_go(tmp_path):
    parsed = config(tmp_path)
    envoy = parsed[f"program:{ACCESS_LOG_PROGRAM}"]
    assert envoy["environment"] == f'ENVOY_ACCESS_LOG_PATH="{tmp_path / "access.log"}"'  # rotated by the launcher
    assert envoy["stdout_logfile"] == "/dev/stdout" and envoy["redirect_stderr"] == "true"
    assert parsed["program:gateway"]["stdout_logfile"] == "/dev/stdout"
    assert "environment" not in parsed["program:gateway"]
    assert parsed["supervisord"]["environment"] == f'APP_LOG_DIR="{tmp_path}",APP_LOG_COLLECTED="true"'
    plain = config(None)
    assert "environment" not in plain["supervisord"]
    assert "environment" not in plain[f"program:{ACCESS_LOG_PROGRAM}"]
    assert plain[f"program:{ACCESS_LOG_PROGRAM}"]["stdout_logfile"] == "/dev/stdout"


def test_make_run_defaults_to_logs_and_an_empty_app_log_dir_turns_files_off(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APP_LOG_DIR", raising=False)
    files = log_files(LauncherSettings())
    assert files is not None and files.directory == tmp_path / "logs" and files.collected
    monkeypatch.setenv("APP_LOG_DIR", "")
    assert log_files(LauncherSettings()) is None
    monkeypatch.setenv("APP_LOG_DIR", str(tmp_path / "elsewhere"))
    assert log_files(LauncherSettings()).directory == tmp_path / "elsewhere"
    monkeypatch.delenv("APP_LOG_DIR")
    assert AppSettings().log_dir is None  # outside make run: stdout only
