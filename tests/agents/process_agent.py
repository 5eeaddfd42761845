#!/usr/bin/env python3
"""Steerable process agent for Genesis Orchestrator's process executor tests (stdlib only).

A long-lived child speaking newline-delimited JSON (one object per line, UTF-8):

  stdin  <- {"task_id": ..., "attempt": ..., "tenant_id": ..., "correlation_id": ..., "payload": {...}}
  stdout -> zero or more {"progress": {"step": k, "of": n}}   (mode "progress")
            at most one {"pay": {"vendor": ..., "amount_cents": ..., "purpose": ...}}
               after which ONE line {"payment": ...} is read from stdin      (mode "pay")
            then exactly one of
              {"result": {...}}
              {"error": "<message>", "retryable": true|false}

Requests are handled one at a time, in order; the process exits 0 at EOF on stdin. Every
stdout line is flushed at once. Anything else (logs) goes to stderr.

payload["mode"] (default "echo"):
  echo                          {"result": {"echo": payload, "task_id", "attempt", "tenant_id", "correlation_id"}}
  progress  steps=N [interval]  N x {"progress": {"step": k, "of": N}}, then
                                {"result": {"steps": N, "task_id": ...}}; interval = seconds between
                                steps (default 0)
  fail      message retryable [fail_attempts]
                                {"error": message, "retryable": retryable}   (retryable default false);
                                with fail_attempts=N only while the request's attempt <= N, later
                                attempts answer like echo
  crash     [marker]            exits with code 3 before answering (nothing on stdout). With
                                marker (a file path): only if that file does not exist yet (it is
                                created first), else answers like echo: crashes once per marker
  env       names=[...]         {"result": {"cwd": os.getcwd(), "env": {name: value or null}}}
  stderr    bytes=N             writes one stderr line of N "x", then {"result": {"wrote": N}}
  flood     bytes=N             writes {"result": "<N x>"} as one stdout line (N > 4 MiB breaks
                                the node's line bound)
  garbage                       writes one non-JSON line, then waits for the next request
  sleep     seconds=N [pid_file]
                                spawns a grandchild `sleep N` (same process group as this
                                process), sleeps N s, then {"result": {"slept": N, "task_id": ...}}.
                                If pid_file is given, first writes there
                                {"pid", "pgid", "grandchild_pid"} as JSON.
  pay       vendor amount_cents [purpose]
                                {"pay": {"vendor", "amount_cents", "purpose"}}, reads one line,
                                then {"result": {"payment": <value of its "payment" key>}}
                                (the whole parsed line if it has no "payment" key)
  unknown modes                 {"error": "unknown mode: <mode>", "retryable": false}

Any mode: with payload["report_to"] (a URL) a start report is POSTed there first
(chaos_report.py; the chaos harness uses it).

A request line that is not a JSON object gets {"error": "bad request: ...", "retryable": false}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# A sibling module; no __pycache__ in the source tree.
sys.dont_write_bytecode = True
from chaos_report import report_start  # noqa: E402

CRASH_EXIT_CODE = 3


def log(msg: str) -> None:
    print(f"process_agent[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _int(v: object) -> int:
    try:
        return int(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def handle(req: dict) -> None:
    payload = req.get("payload")
    mode = payload.get("mode", "echo") if isinstance(payload, dict) else "echo"
    p = payload if isinstance(payload, dict) else {}
    task_id = req.get("task_id")
    log(f"task {task_id} attempt {req.get('attempt')} mode {mode}")
    if p.get("report_to"):
        report_start(p["report_to"], task_id, req.get("attempt"), "process_agent.py")
    if mode == "fail" and "fail_attempts" in p and _int(req.get("attempt")) > _int(p["fail_attempts"]):
        mode = "echo"

    if mode == "echo":
        emit(
            {
                "result": {
                    "echo": payload,
                    "task_id": task_id,
                    "attempt": req.get("attempt"),
                    "tenant_id": req.get("tenant_id"),
                    "correlation_id": req.get("correlation_id"),
                }
            }
        )
    elif mode == "progress":
        steps = int(p.get("steps", 3))
        interval = float(p.get("interval", 0))
        for k in range(1, steps + 1):
            emit({"progress": {"step": k, "of": steps}})
            if interval > 0:
                time.sleep(interval)
        emit({"result": {"steps": steps, "task_id": task_id}})
    elif mode == "fail":
        emit({"error": str(p.get("message", "failed on request")), "retryable": bool(p.get("retryable", False))})
    elif mode == "crash" and p.get("marker") and os.path.exists(p["marker"]):
        log(f"marker {p['marker']} exists: not crashing again")
        emit({"result": {"echo": payload, "task_id": task_id, "attempt": req.get("attempt"), "crashed_before": True}})
    elif mode == "env":
        names = p.get("names", [])
        emit({"result": {"cwd": os.getcwd(), "env": {n: os.environ.get(n) for n in names}}})
    elif mode == "stderr":
        n = int(p.get("bytes", 10))
        sys.stderr.write("x" * n + "\n")
        sys.stderr.flush()
        emit({"result": {"wrote": n}})
    elif mode == "flood":
        emit({"result": "x" * int(p.get("bytes", 10))})
    elif mode == "crash":
        if p.get("marker"):
            with open(p["marker"], "w") as f:
                f.write(str(os.getpid()))
        log(f"crashing with exit code {CRASH_EXIT_CODE} mid-task")
        sys.stdout.flush()
        os._exit(CRASH_EXIT_CODE)
    elif mode == "garbage":
        sys.stdout.write("this is not JSON {{{\n")
        sys.stdout.flush()
    elif mode == "sleep":
        seconds = float(p.get("seconds", 1))
        # Inherits our process group: killing the group (what a timeout should do) kills it too.
        grandchild = subprocess.Popen(
            ["sleep", str(seconds)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        info = {"pid": os.getpid(), "pgid": os.getpgid(0), "grandchild_pid": grandchild.pid}
        log(f"sleeping {seconds}s; {info}")
        if p.get("pid_file"):
            tmp = f"{p['pid_file']}.tmp"
            with open(tmp, "w") as f:
                json.dump(info, f)
            os.replace(tmp, p["pid_file"])
        time.sleep(seconds)
        grandchild.wait()
        emit({"result": {"slept": seconds, "task_id": task_id}})
    elif mode == "pay":
        emit(
            {
                "pay": {
                    "vendor": p.get("vendor"),
                    "amount_cents": p.get("amount_cents"),
                    "purpose": p.get("purpose", f"test purchase for task {task_id}"),
                }
            }
        )
        line = sys.stdin.readline()
        if not line:
            log("stdin closed while waiting for the payment answer")
            emit({"error": "stdin closed while waiting for the payment answer", "retryable": True})
            sys.exit(0)
        try:
            answer = json.loads(line)
        except ValueError as e:
            emit({"error": f"bad payment answer: {e}", "retryable": False})
            return
        payment = answer["payment"] if isinstance(answer, dict) and "payment" in answer else answer
        emit({"result": {"payment": payment}})
    else:
        emit({"error": f"unknown mode: {mode}", "retryable": False})


def main() -> None:
    log("started")
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request is not a JSON object")
        except ValueError as e:
            emit({"error": f"bad request: {e}", "retryable": False})
            continue
        handle(req)
    log("stdin closed; exiting")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        # The node went away; nothing left to tell it.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
