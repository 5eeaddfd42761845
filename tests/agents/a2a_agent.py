#!/usr/bin/env python3
"""A real A2A 1.0 test agent, built on the official ``a2a-sdk`` server stack.

    python a2a_agent.py --port PORT [--streaming] [--host 127.0.0.1] [--exit-on-stdin-eof]

Serves, on one uvicorn server:

* ``GET  /.well-known/agent-card.json`` -- the agent card (SDK route);
  ``supportedInterfaces[0].url`` is the JSON-RPC endpoint below.
* ``POST /a2a/jsonrpc``                  -- A2A 1.0 JSON-RPC (SDK route + DefaultRequestHandler
  + InMemoryTaskStore; this file only supplies the AgentExecutor).
* ``GET  /test/events``                  -- JSON list of what the agent saw (tests only).
* ``POST /test/reset``                   -- clears that list.
* ``GET  /test/health``                  -- ``{"ok": true}``.

Behaviour is steered by the first data part of the incoming message (a JSON object):

    {"mode": "echo", ...}                 COMPLETED, artifact [data {"echo", "metadata", ...}, text "done"]
    {"mode": "fail", "message": "..."}    FAILED, status message text = message; with
                                          "fail_attempts": N only while genesis.attempt <= N,
                                          later attempts complete like echo
    {"mode": "reject", "message": "..."}  REJECTED, status message text = message
    {"mode": "input"}                     INPUT_REQUIRED (a follow-up message on the same task
                                          is steered by its own data part again)
    {"mode": "auth"}                      AUTH_REQUIRED (same)
    {"mode": "slow", "seconds": N}        WORKING for N s, a status update "step k of n" every
                                          ~0.2 s, then COMPLETED like echo; CancelTask -> CANCELED
    {"mode": "progress", "steps": N}      N WORKING updates "step k of N", then COMPLETED like echo
                                          (optional "interval" seconds between steps, default 0.05)

With ``"report_to": URL`` in the data part, the agent first POSTs a start report there
(``chaos_report.py``; the chaos harness uses it).

A Genesis workflow step's data part (``{"input", "needs", "workflow", "business_id"}``, or
``{"input", "compensating", "workflow", …}`` for a compensation) is steered by its ``input``, where a
plan's author puts it; a template's start request (``input.request``) may steer one step by name:
``{"steer": {"<step id>": {"mode": "fail", …}}}`` (not its compensation). Its artifact then carries
``"echo"``: that steering object, and ``"workflow_step"``: what the agent was told about the step
(``workflow``, ``business_id``, ``input``, the names of its ``needs``, the step it is ``compensating``),
so outputs stay small along a chain of steps instead of echoing every need's output again.

A message without a data part is treated as echo (with ``"echo": null``); an unknown mode
ends FAILED with "unknown mode: <mode>".

``READY <port>`` is printed (and flushed) on stdout once the socket accepts connections.
``--port 0`` picks a free port; the printed port is the real one. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
import math
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from a2a.helpers.proto_helpers import new_data_part, new_task, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    TaskState,
)

# A sibling module; no __pycache__ in the source tree.
sys.dont_write_bytecode = True
from chaos_report import report_start  # noqa: E402

log = logging.getLogger("a2a_test_agent")

JSONRPC_PATH = "/a2a/jsonrpc"
SLOW_TICK_SECONDS = 0.2

# --------------------------------------------------------------------------------------
# What the agent saw, for GET /test/events.
# --------------------------------------------------------------------------------------

_events: list[dict[str, Any]] = []
_events_lock = threading.Lock()
_seq = 0

# Which JSON-RPC method started the current execution. Set by the request handler; the SDK
# runs AgentExecutor.execute in a copy of the sender's contextvars, so the executor sees it.
_current_method: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_method", default=None
)


def record(kind: str, task_id: str | None, metadata: Any, **extra: Any) -> None:
    global _seq
    with _events_lock:
        _seq += 1
        event = {"seq": _seq, "kind": kind, "task_id": task_id, "metadata": metadata, "at": time.time()}
        event.update(extra)
        _events.append(event)
    log.info("event %s task=%s %s", kind, task_id, extra)


def _headers(call_context: Any) -> dict[str, str] | None:
    """The HTTP request headers (lower-cased names), as the SDK's context builder kept them."""
    state = getattr(call_context, "state", None) or {}
    return state.get("headers")


def _dict_or_none(msg: Any) -> dict[str, Any] | None:
    """Protobuf Struct -> JSON-style dict; None when unset/empty."""
    d = MessageToDict(msg)
    return d or None


# --------------------------------------------------------------------------------------
# The agent.
# --------------------------------------------------------------------------------------


def _steering_data(context: RequestContext) -> tuple[Any, list[str]]:
    """First data part of the incoming message (or None) and its text parts."""
    data: Any = None
    texts: list[str] = []
    found = False
    if context.message is not None:
        for part in context.message.parts:
            if part.HasField("data") and not found:
                data = MessageToDict(part.data)
                found = True
            elif part.HasField("text"):
                texts.append(part.text)
    return data, texts


def _workflow_step(data: Any) -> dict[str, Any] | None:
    """The data part of a Genesis workflow step or compensation, else None."""
    if isinstance(data, dict) and isinstance(data.get("workflow"), dict) and "input" in data:
        return data
    return None


def _steering_of(data: Any) -> Any:
    """What steers the task: the data part, or for a workflow step its input (or the start request's
    ``steer`` entry for this step)."""
    step = _workflow_step(data)
    if step is None:
        return data
    given = step.get("input")
    given = given if isinstance(given, dict) else {}
    if "compensating" not in step:
        request = given.get("request")
        steer = request.get("steer") if isinstance(request, dict) else None
        mine = steer.get(step["workflow"].get("step")) if isinstance(steer, dict) else None
        if isinstance(mine, dict):
            return mine
    return given


def _step_summary(step: dict[str, Any]) -> dict[str, Any]:
    needs = step.get("needs")
    compensating = step.get("compensating")
    return {
        "workflow": step.get("workflow"),
        "business_id": step.get("business_id"),
        "input": step.get("input"),
        "needs": sorted(needs) if isinstance(needs, dict) else [],
        "compensating": compensating.get("step") if isinstance(compensating, dict) else None,
    }


def _number(v: Any) -> float:
    """A number from metadata or a data part (protobuf makes every number a double); 0 if not one."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


class SteerableExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        data, texts = _steering_data(context)
        # Message.metadata (what the orchestrator fills) vs SendMessageRequest.metadata
        # (request level; RequestContext.metadata returns that one).
        message_metadata = (
            _dict_or_none(context.message.metadata) if context.message is not None else None
        )
        request_metadata = context.metadata or None
        # On a follow-up message without contextId the SDK's RequestContext invents a fresh
        # context id; the task keeps its own, so use that one.
        context_id = (
            context.current_task.context_id if context.current_task is not None else context.context_id
        )
        record(
            "send",
            context.task_id,
            message_metadata,
            context_id=context_id,
            method=_current_method.get(),
            tenant=context.tenant or None,
            request_metadata=request_metadata,
            data=data,
            text=texts or None,
            follow_up=context.current_task is not None,
            headers=_headers(context.call_context),
        )

        # The SDK answers a returnImmediately SendMessage with the first Task event, so
        # publish the (SUBMITTED) task before anything else on a new task.
        if context.current_task is None:
            await event_queue.enqueue_event(
                new_task(
                    context.task_id,
                    context_id,
                    TaskState.TASK_STATE_SUBMITTED,
                    history=[context.message] if context.message is not None else [],
                )
            )

        updater = TaskUpdater(event_queue, context.task_id, context_id)
        step = _workflow_step(data)
        data = _steering_of(data)
        mode = data.get("mode", "echo") if isinstance(data, dict) else "echo"
        meta = message_metadata or {}
        attempt = meta.get("genesis.attempt", 1)
        if isinstance(data, dict) and data.get("report_to"):
            task_id = meta.get("genesis.task_id", context.task_id)
            await asyncio.to_thread(report_start, data["report_to"], task_id, attempt, "a2a_agent.py")
        if mode == "fail" and "fail_attempts" in data and _number(attempt) > _number(data["fail_attempts"]):
            mode = "echo"

        def agent_text(text: str):
            return updater.new_agent_message([new_text_part(text)])

        result = {
            "echo": data,
            "metadata": message_metadata,
            "request_metadata": request_metadata,
            "tenant": context.tenant or None,
            "task_id": context.task_id,
            "context_id": context_id,
        }
        if step is not None:
            result["workflow_step"] = _step_summary(step)

        async def complete() -> None:
            await updater.add_artifact(
                [new_data_part(result), new_text_part("done")], name="result"
            )
            await updater.complete()

        if mode == "echo":
            await complete()
        elif mode == "fail":
            await updater.failed(agent_text(str(data.get("message", "failed on request"))))
        elif mode == "reject":
            await updater.reject(agent_text(str(data.get("message", "rejected on request"))))
        elif mode == "input":
            await updater.requires_input(
                agent_text(str(data.get("message", "more input required")))
            )
        elif mode == "auth":
            await updater.requires_auth(
                agent_text(str(data.get("message", "authentication required")))
            )
        elif mode == "slow":
            seconds = float(data.get("seconds", 1))
            n = max(1, math.ceil(seconds / SLOW_TICK_SECONDS))
            tick = seconds / n
            try:
                for k in range(1, n + 1):
                    await updater.start_work(agent_text(f"step {k} of {n}"))
                    await asyncio.sleep(tick)
            except asyncio.CancelledError:
                # CancelTask: the SDK calls cancel() below (which publishes CANCELED),
                # then cancels this coroutine.
                log.info("slow task %s: execution cancelled", context.task_id)
                raise
            await complete()
        elif mode == "progress":
            steps = int(data.get("steps", 3))
            interval = float(data.get("interval", 0.05))
            for k in range(1, steps + 1):
                await updater.start_work(agent_text(f"step {k} of {steps}"))
                if interval > 0:
                    await asyncio.sleep(interval)
            await complete()
        else:
            await updater.failed(agent_text(f"unknown mode: {mode}"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        log.info("cancel requested for task %s", context.task_id)
        record("canceled", context.task_id, None, context_id=context.context_id)
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel(updater.new_agent_message([new_text_part("canceled by request")]))


class RecordingRequestHandler(DefaultRequestHandler):
    """The SDK's default handler, noting GetTask/CancelTask calls for /test/events."""

    async def on_message_send(self, params, context):
        _current_method.set("SendMessage")
        return await super().on_message_send(params, context)

    async def on_message_send_stream(self, params, context):
        _current_method.set("SendStreamingMessage")
        async for event in super().on_message_send_stream(params, context):
            yield event

    async def on_get_task(self, params, context):
        try:
            task = await super().on_get_task(params, context)
        except Exception as e:
            record("get", params.id, None, outcome=type(e).__name__, headers=_headers(context))
            raise
        state = TaskState.Name(task.status.state) if task is not None else None
        record("get", params.id, None, outcome=state, headers=_headers(context))
        return task

    async def on_cancel_task(self, params, context):
        metadata = _dict_or_none(params.metadata)
        try:
            task = await super().on_cancel_task(params, context)
        except Exception as e:
            record("cancel", params.id, metadata, outcome=type(e).__name__, headers=_headers(context))
            raise
        state = TaskState.Name(task.status.state) if task is not None else None
        record("cancel", params.id, metadata, outcome=state, headers=_headers(context))
        return task


# --------------------------------------------------------------------------------------
# Wiring.
# --------------------------------------------------------------------------------------


def build_card(host: str, port: int, streaming: bool) -> AgentCard:
    return AgentCard(
        name="genesis-test-agent",
        description="Steerable A2A 1.0 test peer for Genesis Orchestrator (tests/agents).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(
                url=f"http://{host}:{port}{JSONRPC_PATH}",
                protocol_binding="JSONRPC",
                protocol_version="1.0",
            )
        ],
        capabilities=AgentCapabilities(streaming=streaming, push_notifications=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(
                id="steer",
                name="steerable test behaviour",
                description="Behaviour chosen by the data part's 'mode': echo, fail, reject, "
                "input, auth, slow, progress.",
                tags=["test"],
                examples=['{"mode": "echo"}'],
            )
        ],
    )


async def _events_endpoint(request: Request) -> JSONResponse:
    with _events_lock:
        return JSONResponse(list(_events))


async def _reset_endpoint(request: Request) -> JSONResponse:
    with _events_lock:
        _events.clear()
    return JSONResponse({"ok": True})


async def _health_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def build_app(card: AgentCard) -> tuple[Starlette, DefaultRequestHandler]:
    handler = RecordingRequestHandler(
        agent_executor=SteerableExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url=JSONRPC_PATH),
        Route("/test/events", _events_endpoint, methods=["GET"]),
        Route("/test/reset", _reset_endpoint, methods=["POST"]),
        Route("/test/health", _health_endpoint, methods=["GET"]),
    ]
    return Starlette(routes=routes), handler


def _watch_stdin_eof(server: uvicorn.Server) -> None:
    """--exit-on-stdin-eof: stop when the parent (holding our stdin pipe) goes away."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except Exception:  # noqa: BLE001
        pass
    log.info("stdin closed; shutting down")
    server.should_exit = True


async def serve(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"a2a_agent.py: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]

    card = build_card(args.host, port, args.streaming)
    app, handler = build_app(card)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin_eof, args=(server,), daemon=True).start()

    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serve_task.done():
            await serve_task  # re-raise the startup error
            raise SystemExit("server stopped before it started")
        await asyncio.sleep(0.01)
    print(f"READY {port}", flush=True)
    log.info(
        "serving A2A 1.0 on http://%s:%d%s (streaming=%s)", args.host, port, JSONRPC_PATH, args.streaming
    )
    try:
        await serve_task
    finally:
        await handler.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 = pick a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--streaming", action="store_true", help="advertise and serve SendStreamingMessage")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="shut down when stdin reaches EOF (spawn with a piped stdin to tie the agent to its parent)",
    )
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("a2a").setLevel(logging.WARNING)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
