#!/usr/bin/env python3
"""Turns a flowrun JSON report into a wrk script that sends the same requests, in the same order,
over and over: the raw limit of bench/batch.sh is then measured with the requests a run really
sends (methods, paths, headers and bodies of the same size), not with an empty GET.

    flowrun run FLOW --format json | python3 bench/replay.py > replay.lua
    wrk -s replay.lua ...

Masked headers (`***`) are sent with the value of the environment variable the bench sets for
them (SF_ACCESS_TOKEN for Authorization); multipart bodies are encoded here with a fixed boundary.
"""
import json
import os
import sys

BOUNDARY = "flowrun-bench-boundary"


def lua(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def body_of(request):
    if "json" in request:
        return "application/json", json.dumps(request["json"], separators=(",", ":"))
    if "multipart" in request:
        out = []
        for part in request["multipart"]:
            out.append(f"--{BOUNDARY}\r\n")
            out.append(f'Content-Disposition: form-data; name="{part["name"]}"\r\n')
            out.append(f'Content-Type: {part.get("content_type", "text/plain")}\r\n\r\n')
            content = part.get("json")
            out.append(json.dumps(content, separators=(",", ":")) if content is not None else part.get("text", ""))
            out.append("\r\n")
        out.append(f"--{BOUNDARY}--\r\n")
        return f"multipart/form-data; boundary={BOUNDARY}", "".join(out)
    return None, None


def main():
    report = json.load(sys.stdin)
    token = os.environ.get("SF_ACCESS_TOKEN", "")
    lines = ["local requests = {}", "init = function(args)"]
    count = 0
    for step in report["steps"]:
        for attempt in step.get("attempts", []):
            request = attempt["request"]
            headers = dict(request.get("headers", {}))
            if headers.get("Authorization") == "Bearer ***":
                headers["Authorization"] = "Bearer " + token
            kind, body = body_of(request)
            if kind:
                headers["Content-Type"] = kind
            fields = ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in headers.items())
            body_lua = lua(body) if body is not None else "nil"
            lines.append(
                f"  requests[#requests + 1] = wrk.format({lua(request['method'])}, {lua(request['path'])}, {{{fields}}}, {body_lua})"
            )
            count += 1
    if count == 0:
        sys.exit("replay.py: the report has no requests")
    lines += [
        "end",
        "local i = 0",
        "request = function()",
        "  i = i % #requests + 1",
        "  return requests[i]",
        "end",
    ]
    print("\n".join(lines))


main()
