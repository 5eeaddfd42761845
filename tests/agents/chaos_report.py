"""Execution reports for the chaos harness (stdlib only; shared by a2a_agent.py and process_agent.py).

A payload with ``"report_to": URL`` makes the agent POST, before it acts on the payload, one JSON
object to URL:

    {"task_id": <Genesis task id>, "attempt": <int>, "phase": "start", "agent": <which test agent>}

the same shape the simulated executor reports (``simulate.report_to``), without ``node`` and
``deliveries`` (an outside agent does not know them). ``genesis-chaos --agents outside`` uses it to see
every execution, including the ones a crash or a kill cuts short. Best effort: a report that cannot
be sent within a second is dropped (and logged), the task runs anyway.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

log = logging.getLogger("chaos_report")

TIMEOUT_SECONDS = 1.0


def report_start(url: Any, task_id: Any, attempt: Any, agent: str) -> None:
    """POST a start report to ``url`` (when it is a non-empty string); never raises."""
    if not isinstance(url, str) or not url:
        return
    try:
        attempt = int(float(attempt)) if attempt is not None else 0
    except (TypeError, ValueError):
        attempt = 0
    body = json.dumps({"task_id": str(task_id), "attempt": attempt, "phase": "start", "agent": agent}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
            resp.read()
    except Exception as e:  # noqa: BLE001 - a report must never fail the task
        log.warning("report to %s failed: %s", url, e)
