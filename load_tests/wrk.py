"""Drive an HTTP endpoint with wrk (Debian's package): closed loop, N connections.

wrk is C and event-driven: one thread keeps 64 connections busy on a fraction of a core,
so on a 2-core machine it leaves the gateway nearly all of the rest. Its Lua `done()` hook
prints the run as one JSON line (latency percentiles in microseconds, statuses).

Statuses are counted in the Lua `response()` hook, which wrk hands the parsed headers too:
`refusals_without_retry_after` counts the 429s and 503s without a Retry-After header (only
refusals are looked at, so a run of 200s costs nothing more). wrk's latency percentiles are
of every response, refusals included: it has no per-status latency.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["WrkResult", "ensure_wrk", "run_wrk"]

_SCRIPT = r"""
local body_file = io.open(os.getenv("MLGATE_WRK_BODY"), "rb")
wrk.method = "POST"
wrk.body = body_file:read("*all")
body_file:close()
wrk.headers["Content-Type"] = os.getenv("MLGATE_WRK_CONTENT_TYPE")
local header_length = os.getenv("MLGATE_WRK_HEADER_LENGTH")
if header_length ~= "" then wrk.headers["Inference-Header-Content-Length"] = header_length end

local threads = {}
function setup(thread) table.insert(threads, thread) end
ok, throttled, shed, late, other, bare = 0, 0, 0, 0, 0, 0
local function retry_after(headers)
  for name, _ in pairs(headers) do
    if string.lower(name) == "retry-after" then return true end
  end
  return false
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 429 then throttled = throttled + 1
  elseif status == 503 then shed = shed + 1
  elseif status == 504 then late = late + 1
  else other = other + 1 end
  if (status == 429 or status == 503) and not retry_after(headers) then bare = bare + 1 end
end
function done(summary, latency, requests)
  local counts = {ok = 0, throttled = 0, shed = 0, late = 0, other = 0, bare = 0}
  for _, t in ipairs(threads) do
    for key, _ in pairs(counts) do counts[key] = counts[key] + t:get(key) end
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "socket_errors": %d, "status_200": %d, "status_429": %d, ' ..
    '"status_503": %d, "status_504": %d, "status_other": %d, "no_retry_after": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    counts.ok, counts.throttled, counts.shed, counts.late, counts.other, counts.bare))
end
"""


@dataclass
class WrkResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: int
    wrk_cpu_s: float
    refusals_without_retry_after: int = 0  # 429s and 503s without a Retry-After header

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


def run_wrk(
    url: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    header_length: int | None,
    content_type: str = "application/octet-stream",
    cpu: int | None = None,
) -> WrkResult:
    """`cpu`: pin wrk to this core (benchmarks pin the server to another, so the two do not
    trade places on a shared core between runs); None leaves it unpinned."""
    with tempfile.TemporaryDirectory(prefix="mlgate-wrk-") as folder:
        script, body_file = Path(folder) / "post.lua", Path(folder) / "body.bin"
        script.write_text(_SCRIPT)
        body_file.write_bytes(body)
        env = {
            "MLGATE_WRK_BODY": str(body_file),
            "MLGATE_WRK_CONTENT_TYPE": content_type,
            "MLGATE_WRK_HEADER_LENGTH": "" if header_length is None else str(header_length),
            "PATH": "/usr/bin:/bin",
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        pin = [] if cpu is None else ["/usr/bin/taskset", "-c", str(cpu)]
        done = subprocess.run(
            [
                *pin,
                ensure_wrk(),
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(row for row in done.stdout.splitlines() if row.startswith("{"))
    data = json.loads(line)
    duration = data["duration_us"] / 1e6
    return WrkResult(
        connections=connections,
        seconds=round(duration, 3),
        requests=data["requests"],
        rps=round(data["requests"] / duration, 1),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses={k.removeprefix("status_"): v for k, v in data.items() if k.startswith("status_")},
        socket_errors=data["socket_errors"],
        wrk_cpu_s=round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 3),
        refusals_without_retry_after=data["no_retry_after"],
    )


def run_wrk_json(
    url: str, body: bytes, *, connections: int, seconds: float, cpu: int | None = 1
) -> WrkResult:
    """`run_wrk` with a JSON body (no binary header), wrk on core `cpu` (the benchmarks'
    client core by default)."""
    return run_wrk(
        url,
        body,
        connections=connections,
        seconds=seconds,
        header_length=None,
        content_type="application/json",
        cpu=cpu,
    )
