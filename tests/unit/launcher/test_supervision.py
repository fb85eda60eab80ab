"""The supervisord configuration `make run` writes, and what its event listener makes of state changes."""
from __future__ import annotations

import configparser
import io
import logging
from pathlib import Path

import pytest

from libs.launcher import events
from libs.launcher.supervision import EVENTS_PROGRAM, programs, read_procfile, render_config

ROOT = Path(__file__).resolve().parents[3]


def rendered(drain_seconds: float = 30) -> configparser.ConfigParser:
    supervised = programs(read_procfile(ROOT / "Procfile"), python="/venv/bin/python")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(render_config(supervised, state_dir=Path("/state"), drain_seconds=drain_seconds,
                                     events_command="/venv/bin/python -m libs.launcher.events"))
    return parser


def stop_order(config: configparser.ConfigParser) -> list[str]:
    """Groups as supervisord stops them: highest priority first (a group's programs stop together)."""
    grouped = {name for section in config.sections() if section.startswith("group:")
               for name in config[section]["programs"].split(",")}
    units = {section.split(":", 1)[1]: int(config[section]["priority"]) for section in config.sections()
             if section.startswith("group:") or (section.startswith("program:")
                                                 and section.split(":", 1)[1] not in grouped)}
    return sorted(units, key=lambda name: -units[name])


def test_every_procfile_process_is_supervised_and_restarted():
    config = rendered()
    names = {section.split(":", 1)[1] for section in config.sections() if section.startswith("program:")}
    assert names == set(read_procfile(ROOT / "Procfile"))
    for name in names:
        program = config[f"program:{name}"]
        assert program["autorestart"] == "true" and int(program["startretries"]) >= 10
        assert program["command"].startswith("/venv/bin/python -m ")
    assert config["supervisord"]["nodaemon"] == "true"


def test_the_gateway_stops_first_and_envoy_last_after_each_has_drained():
    config = rendered(drain_seconds=30)
    assert stop_order(config) == ["gateway", "compliance", "workers", "monitor", "envoy"]
    assert config["group:workers"]["programs"].split(",") == ["generation", "embedding", "conversation"]
    assert all(int(config[f"program:{name}"]["stopwaitsecs"]) > 30 for name in ("gateway", "generation"))
    # The event listener starts first and stops last: it sees every other process come and go.
    assert int(config[f"eventlistener:{EVENTS_PROGRAM}"]["priority"]) < int(config["program:envoy"]["priority"])


def test_model_workers_get_a_start_period_covering_their_model_load():
    config = rendered()
    assert int(config["program:generation"]["startsecs"]) >= 30
    assert int(config["program:gateway"]["startsecs"]) < int(config["program:generation"]["startsecs"])


def event(state: str, **fields: str) -> tuple[dict[str, str], str]:
    payload = " ".join(f"{key}:{value}" for key, value in {"processname": "generation", "groupname": "workers",
                                                          **fields}.items())
    return {"eventname": f"PROCESS_STATE_{state}", "len": str(len(payload))}, payload


def restarts(program: str) -> float:
    return events.RESTARTS.labels(program)._value.get()


@pytest.mark.parametrize(("from_state", "counted"), [("EXITED", 1), ("BACKOFF", 1), ("STOPPED", 0)])
def test_a_restart_is_counted_and_logged(from_state, counted, caplog):
    before = restarts("generation")
    with caplog.at_level(logging.WARNING, logger="libs.launcher.events"):
        events.observe(events.parse(*event("STARTING", from_state=from_state)))
    assert restarts("generation") == before + counted
    assert ("service restarting" in caplog.text) == bool(counted)


def test_a_crash_loop_and_a_death_are_errors_in_the_log(caplog):
    with caplog.at_level(logging.INFO, logger="libs.launcher.events"):
        events.observe(events.parse(*event("EXITED", from_state="RUNNING", expected="0", pid="42")))
        events.observe(events.parse(*event("BACKOFF", from_state="STARTING")))
        events.observe(events.parse(*event("FATAL", from_state="BACKOFF")))
    levels = [record.levelname for record in caplog.records]
    assert levels == ["ERROR", "ERROR", "CRITICAL"]
    assert "crash loop" in caplog.records[1].getMessage()
    assert events.RUNNING.labels("generation")._value.get() == 0


def test_the_listener_speaks_supervisords_protocol():
    headers, payload = event("RUNNING", from_state="STARTING", pid="7")
    header_line = " ".join(f"{key}:{value}" for key, value in headers.items())
    stdout = io.StringIO()
    events.listen(io.StringIO(f"{header_line}\n{payload}"), stdout)
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\n"
    assert events.RUNNING.labels("generation")._value.get() == 1
