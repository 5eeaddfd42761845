#!/usr/bin/env python3
"""A minimal Genesis process agent (stdlib only). The protocol: docs/agents.md, "process".

Genesis starts one of these per concurrency slot and keeps it running. It writes one JSON
request per line on stdin and reads JSON lines back on stdout: optional {"progress": ...}
lines, optional {"pay": ...} lines (each answered by Genesis with one {"payment": ...} line on
stdin), and finally exactly one {"result": ...} or {"error": "...", "retryable": true|false}.
Logs go to stderr (Genesis logs them with the agent, slot and task). At EOF on stdin, exit.
"""
import json
import sys
import time


def send(obj):
    print(json.dumps(obj), flush=True)  # one line, flushed: Genesis is waiting for it


def pay(vendor, amount_cents, purpose):
    """Ask the node's MetaAgent for money; returns the decision (status approved / denied /
    needs_review / error). Who pays (agent, tenant, business) is the task's, not ours to say."""
    send({"pay": {"vendor": vendor, "amount_cents": amount_cents, "purpose": purpose}})
    return json.loads(sys.stdin.readline())["payment"]


def handle(request):
    payload = request.get("payload") or {}
    if payload.get("mode") == "pay":
        payment = pay(payload["vendor"], payload["amount_cents"], payload.get("purpose", "example purchase"))
        if payment["status"] == "approved":
            send({"result": {"payment": payment}})
        elif payment["status"] in ("needs_review", "error"):
            # Held for a person, or no decision yet: worth another attempt later.
            send({"error": f"payment not approved yet: {payment}", "retryable": True})
        else:
            send({"error": f"payment denied ({payment['code']}): {payment['reason']}", "retryable": False})
        return
    words = str(payload.get("text", "")).split()
    for i, _ in enumerate(words, start=1):
        if time.time() * 1000 > request["deadline_ms"]:
            return send({"error": "out of time", "retryable": True})
        send({"progress": {"step": i, "of": len(words)}})
    send({"result": {"task_id": request["task_id"], "words": len(words)}})


for line in sys.stdin:
    if not line.strip():
        continue
    request = json.loads(line)
    print(f"task {request.get('task_id')} attempt {request.get('attempt')}", file=sys.stderr, flush=True)
    try:
        handle(request)
    except Exception as e:  # report instead of dying: Genesis decides whether to retry
        send({"error": str(e), "retryable": False})
