"""statsync's MCP server through a client no one here wrote: the official Python SDK
(`mcp` from PyPI). Lists the tools, reports a status with `set_status` and checks the
decision and its reason, then calls every other tool. Run by .ci/run against a live
server:

    python tests/mcp_client.py http://127.0.0.1:8080/mcp <api-token>

Exits 1 with a message naming what failed.
"""

import asyncio
import json
import random
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOOLS = {
    "get_status",
    "set_status",
    "history",
    "list_conflicts",
    "resolve_conflict",
    "recent_events",
}


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


async def call(session, tool, arguments, expect_error=False):
    """The tool's structured answer; an error unless `expect_error`."""
    result = await session.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""
    check(
        bool(result.is_error) == expect_error,
        f"{tool}({json.dumps(arguments)}): isError={result.is_error}: {text}",
    )
    answer = result.structured_content
    check(answer is not None, f"{tool}: no structured content: {text}")
    print(f"mcp: {tool}({json.dumps(arguments)}) -> {text[:160]}")
    return answer


async def exercise(session):
    init = await session.initialize()
    check(init.server_info.name == "statsync", f"server is {init.server_info.name!r}")
    listed = await session.list_tools()
    names = {t.name for t in listed.tools}
    check(names == TOOLS, f"tools listed: {sorted(names)}, expected {sorted(TOOLS)}")
    for tool in listed.tools:
        check(tool.input_schema.get("type") == "object", f"{tool.name}: {tool.input_schema}")
        check(tool.description, f"{tool.name} has no description")

    # An agent on a Linear issue reports progress without knowing Linear: statsync
    # creates and links the entity, and answers its decision with the reason. A fresh
    # identifier, so whatever else ran against this server first cannot have set it.
    ref = f"MCP-{random.randint(1, 10**9)}"
    decision = await call(
        session,
        "set_status",
        {"ref": ref, "status": "in_progress", "reason": "the agent started"},
    )
    check(decision.get("decision") == "applied", f"set_status decided {decision}")
    check(decision.get("reason"), f"set_status gave no reason: {decision}")
    check(decision.get("status") == "in_progress", f"set_status: {decision}")
    entity = decision["entityId"]

    status = await call(session, "get_status", {"ref": ref})
    check(status["entity"]["id"] == entity, f"get_status: {status}")
    check(status["entity"]["status"] == "in_progress", f"get_status: {status}")
    check(isinstance(status["systems"], list), f"get_status: {status}")

    history = await call(session, "history", {"ref": entity, "limit": 5})
    check(history["transitions"][0]["toStatus"] == "in_progress", f"history: {history}")

    conflicts = await call(session, "list_conflicts", {})
    check(isinstance(conflicts["conflicts"], list), f"list_conflicts: {conflicts}")

    # No conflict waits here: the tool answers a clear error naming the id.
    missing = "00000000-0000-4000-8000-000000000000"
    error = await call(
        session, "resolve_conflict", {"id": missing, "status": "done"}, expect_error=True
    )
    check(error["error"]["code"] == "NOT_FOUND", f"resolve_conflict: {error}")
    check(missing in error["error"]["message"], f"resolve_conflict: {error}")

    events = await call(session, "recent_events", {"rooms": [f"entity:{entity}"]})
    types = [e["type"] for e in events["events"]]
    check("status_changed" in types, f"recent_events: {types}")

    bad = await call(
        session, "set_status", {"ref": ref, "status": "doing"}, expect_error=True
    )
    check(bad["error"]["code"] == "INVALID_STATUS", f"a bad status: {bad}")


async def main(url, token):
    headers = {"Authorization": f"Bearer {token}"}
    # The SDK takes headers through the HTTP client it is given.
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mcp_client.py <url of /mcp> <api token>")
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except Failure as e:
        sys.exit(f"mcp client: FAILED: {e}")
    except Exception as e:  # the SDK's own errors: connection, protocol, auth
        sys.exit(f"mcp client: FAILED: {type(e).__name__}: {e}")
    print("mcp client: all six tools answered")
