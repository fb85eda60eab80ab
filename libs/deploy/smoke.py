"""What `make compose-test` asks the running stack, through Envoy (and of Prometheus)."""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.deploy.commands import DeployError

GENERATION_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_DIMENSIONS = 384
PHI_TEXT = "Patient Jane Roe, phone 617-555-0142, seen on 03/14/2024."
PHI_VALUES = ("Jane Roe", "617-555-0142")

Json = dict[str, Any]


@dataclass(frozen=True)
class Check:
    name: str
    seconds: float
    detail: str


def http_json(url: str, body: Json | None = None, key: str | None = None, timeout: float = 120.0,
              context: ssl.SSLContext | None = None) -> Json:
    """GET (or POST `body`) and decode the JSON answer; DeployError on a non-2xx status. context: TLS (https)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:
            return json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise DeployError(f"{url}: HTTP {error.code} {error.read()[:300].decode(errors='replace')}") from error
    except (urllib.error.URLError, OSError) as error:
        raise DeployError(f"{url}: {error}") from error


def poll(what: str, probe: Callable[[], Json], accept: Callable[[Json], bool], timeout: float) -> Json:
    """Ask until the answer is accepted (services warm up behind a healthy edge)."""
    deadline = time.monotonic() + timeout
    answer: Json | str = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = probe()
            if accept(answer):
                return answer
        except DeployError as error:
            answer = str(error)
        time.sleep(2)
    raise DeployError(f"{what}: not as expected within {timeout:.0f} s; last answer: {str(answer)[:400]}")


def timed(name: str, action: Callable[[], str]) -> Check:
    started = time.monotonic()
    detail = action()
    return Check(name, time.monotonic() - started, detail)


def check_health(edge: str) -> str:
    answer = poll("GET /health", lambda: http_json(f"{edge}/health"), lambda a: a.get("status") == "SERVING", 180)
    return f"SERVING, services: {', '.join(sorted(answer.get('services', {})))}"


def check_edge_tls(url: str, ca_file: Path) -> str:
    """Envoy's TLS listener: GET /health over HTTPS, its certificate verified against the given CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    answer = http_json(f"{url}/health", context=context)
    if answer.get("status") != "SERVING":
        raise DeployError(f"HTTPS /health answered {str(answer)[:300]}")
    return "HTTPS /health SERVING, certificate verified"


def check_generation(edge: str, key: str) -> str:
    body = {"inputs": "Name one symptom of anemia.", "parameters": {"max_new_tokens": 12, "temperature": 0}}
    answer = http_json(f"{edge}/models/{GENERATION_MODEL}/predict", body, key)
    text, tokens = answer.get("outputs"), int(answer.get("metadata", {}).get("tokens_generated", 0))
    if not isinstance(text, str) or not text.strip() or tokens <= 0:
        raise DeployError(f"generation answered {str(answer)[:300]}")
    return f"{tokens} tokens: {text.strip()[:60]!r}"


def check_embedding(edge: str, key: str) -> str:
    answer = http_json(f"{edge}/models/{EMBEDDING_MODEL}/predict", {"inputs": ["chest pain", "headache"]}, key)
    vectors = answer.get("outputs")
    if not isinstance(vectors, list) or len(vectors) != 2 or any(len(v) != EMBEDDING_DIMENSIONS for v in vectors):
        raise DeployError(f"embedding answered {str(answer)[:300]}")
    return f"2 vectors of {EMBEDDING_DIMENSIONS} dimensions"


def check_deidentification(edge: str, key: str) -> str:
    answer = http_json(f"{edge}/v1/deidentify", {"text": PHI_TEXT}, key)
    redacted, entities = answer.get("redacted_text") or answer.get("redactedText", ""), answer.get("entities", [])
    leaked = [value for value in PHI_VALUES if value in redacted]
    if leaked or not entities:
        raise DeployError(f"de-identification left {leaked} in {redacted!r} ({len(entities)} entities)")
    return f"{redacted!r} ({len(entities)} entities)"


def check_audit(edge: str, key: str) -> str:
    answer = http_json(f"{edge}/v1/audit:verify", {}, key)
    checked = int(answer.get("records_checked") or answer.get("recordsChecked") or 0)
    if answer.get("intact") is not True or checked <= 0:
        raise DeployError(f"audit verify answered {answer}")
    return f"chain intact, {checked} records"


def check_prometheus(prometheus: str, expected_jobs: set[str]) -> str:
    """Every scrape target up and the project's rules loaded."""
    def targets_up(answer: Json) -> bool:
        active = answer.get("data", {}).get("activeTargets", [])
        jobs = {target["labels"]["job"] for target in active if target.get("health") == "up"}
        return expected_jobs <= jobs and all(target.get("health") == "up" for target in active)

    try:
        poll("Prometheus targets", lambda: http_json(f"{prometheus}/api/v1/targets"), targets_up, 90)
    except DeployError:
        active = http_json(f"{prometheus}/api/v1/targets").get("data", {}).get("activeTargets", [])
        down = [f"{t['labels']['job']} {t.get('scrapeUrl', '')}: {t.get('health')} {t.get('lastError', '')}".strip()
                for t in active if t.get("health") != "up"]
        missing = expected_jobs - {t["labels"]["job"] for t in active}
        raise DeployError(f"Prometheus targets not up within 90 s: {'; '.join(down) or 'none down'}"
                          f"{f'; no job {sorted(missing)}' if missing else ''}") from None
    rules = http_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    names = sorted(rule["name"] for group in rules for rule in group["rules"])
    if not names:
        raise DeployError("Prometheus loaded no rules")
    return f"{len(expected_jobs)} jobs up; rules: {', '.join(names)}"
