#!/usr/bin/env python3
"""A minimal Genesis process agent (stdlib only).

Genesis starts this once and keeps it running. It sends one JSON request per line on
stdin and reads JSON lines back on stdout: optional {"progress": ...} lines, optionally a
{"pay": ...} request (answered by Genesis with one {"payment": ...} line on stdin), and
finally {"result": ...} or {"error": ..., "retryable": ...}. Logs go to stderr.
"""
import json
import sys


def send(obj):
    print(json.dumps(obj), flush=True)  # one line, flushed: Genesis is waiting for it


def handle(request):
    payload = request.get("payload") or {}
    if payload.get("mode") == "pay":
        # Ask the node to pay; it answers with exactly one line.
        send({"pay": {"vendor": payload["vendor"], "amount_cents": payload["amount_cents"],
                      "purpose": payload.get("purpose", "example purchase")}})
        answer = json.loads(sys.stdin.readline())
        send({"result": {"payment": answer.get("payment")}})
        return
    words = str(payload.get("text", "")).split()
    for i, _ in enumerate(words, start=1):
        send({"progress": {"step": i, "of": len(words)}})
    send({"result": {"task_id": request["task_id"], "words": len(words)}})


for line in sys.stdin:
    if not line.strip():
        continue
    request = json.loads(line)
    print(f"task {request.get('task_id')} attempt {request.get('attempt')}", file=sys.stderr)
    try:
        handle(request)
    except Exception as e:  # report instead of dying: Genesis decides whether to retry
        send({"error": str(e), "retryable": False})
