"""Publish throughput over HTTP: `hookd serve` (SQLite, synchronous=FULL) under a cheap client.

    PYTHONPATH=src python bench/publish_http.py --quick     # smoke run (< 1 min)
    PYTHONPATH=src python bench/publish_http.py             # full run
    PYTHONPATH=src python bench/publish_http.py --pyspy single   # + py-spy of the server
    PYTHONPATH=src python bench/publish_http.py --ab /tmp/hookd-before/src   # before/after

What runs: `bench/receiver.py` (a fast webhook receiver) and `hookd serve` in child processes, on
127.0.0.1, with a throw-away database and config directory, the API rate limits off
(`HOOKD_RATE_LIMIT_PER_KEY=off`, `HOOKD_RATE_LIMIT_PER_IP=off`) and
`HOOKD_ALLOW_PRIVATE_NETWORKS=127.0.0.0/8`. One endpoint subscribes to `bench.event` and points at
the receiver, so every event fans out to one delivery, which the server's worker sends while the
publishing goes on (`--command api` runs `hookd api` instead: no worker).

The load generator is a raw asyncio HTTP/1.1 client (uvloop when importable): C kept-alive
connections, each sending a pre-built request as soon as the previous response is complete (no
pipelining). It shares the machine's cores with the server, so it is kept cheap.

Phases, each bounded by a request count and a time cap:

- **baseline**: `GET /healthz` (no database, no authentication) with the same client and the same
  concurrency, before and after the publish phases (their mean is the baseline; their spread shows
  how noisy the machine was). It is what the HTTP stack alone serves here.
- **single**: `POST /v1/events`, one event a request (durable before the 202).
- **batch N**: `POST /v1/events/batch` with N events a request (500 and 1000).

Between phases the worker is given time (`--drain-cap`) to deliver the backlog, so one phase's
deliveries do not slow the next. Every response must be a 202; any other status is counted and
makes the run exit 1.

Results: `bench/results/publish-http-<UTC stamp>.{json,md}` and `latest-publish-http.md`
(`-quick` / `-profiled` variants); with `--ab SRC`, the same phases run first against the hookd
sources in SRC, and `publish-http-ab-<stamp>-<command>.md` / `latest-publish-http-ab-<command>.md`
put both runs side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EVENT_TYPE = "bench.event"
TICKS = os.sysconf("SC_CLK_TCK")


# child processes --------------------------------------------------------------------------------
def _readline(stream: Any, timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
        return str(stream.readline())


def _stop(proc: subprocess.Popen[str] | None, timeout: float = 20.0) -> str:
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out or ""


def start_receiver() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "receiver.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = _readline(proc.stdout, 15.0)
    if not line.startswith("LISTENING "):
        _stop(proc)
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return proc, int(line.split()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_hookd(
    command: str, workdir: Path, port: int, api_key: str, src: Path
) -> tuple[subprocess.Popen[str], Path]:
    env = {
        **os.environ,
        "HOOKD_API_KEY": api_key,
        "HOOKD_CONFIG_DIR": str(workdir / "config"),
        "HOOKD_DATA_DIR": str(workdir),
        "HOOKD_RATE_LIMIT_PER_KEY": "off",
        "HOOKD_RATE_LIMIT_PER_IP": "off",
        "HOOKD_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
        "HOOKD_SQLITE_SYNCHRONOUS": "FULL",
        "PYTHONPATH": str(src) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    log = workdir / "hookd.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hookd",
                command,
                "--db",
                str(workdir / "hookd.db"),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hookd exited at start-up:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                return proc, log
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"hookd did not become ready:\n{log.read_text()}")


def api_call(port: int, key: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def receiver_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as response:
        return int(json.loads(response.read())["count"])


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all threads)."""
    return sum(proc_cpu_split(pid))


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


# the load generator -----------------------------------------------------------------------------
class Load:
    """Shared state of one phase: the request budget, the deadline, the outcome."""

    def __init__(self, requests: list[bytes], count: int, deadline: float) -> None:
        self.requests = requests
        self.left = count
        self.deadline = deadline
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.bodies: dict[int, bytes] = {}  # one sample body per non-2xx status
        self.capped = False

    def next_request(self) -> bytes | None:
        if self.left <= 0:
            return None
        if time.monotonic() >= self.deadline:
            self.capped = True
            return None
        self.left -= 1
        self.sent += 1
        return self.requests[self.sent % len(self.requests)]


class Client(asyncio.Protocol):
    """One kept-alive connection: send, read the whole response, send the next."""

    def __init__(self, load: Load, done: asyncio.Future[None]) -> None:
        self.load = load
        self.done = done
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        request = self.load.next_request()
        if request is None:
            if not self.done.done():
                self.done.set_result(None)
            return
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[: end + 2].lower()  # each header line ends with CRLF
            at = head.find(b"\r\ncontent-length:")
            length = 0 if at < 0 else int(head[at + 17 : head.find(b"\r\n", at + 2)])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(self.buffer[9:12])
            self.load.statuses[status] += 1
            if status >= 300 and status not in self.load.bodies:
                self.load.bodies[status] = self.buffer[end + 4 : total][:500]
            self.buffer = self.buffer[total:]
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"the server closed a connection: {exc}"))


async def run_load(
    port: int, requests: list[bytes], count: int, concurrency: int, cap: float, server_pid: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = Load(requests, count, deadline=float("inf"))
    (user, system), cpu_client = proc_cpu_split(server_pid), time.process_time()
    cpu_server = user + system
    started = time.perf_counter()
    load.deadline = time.monotonic() + cap
    dones: list[asyncio.Future[None]] = []
    transports = []
    for _ in range(min(concurrency, count)):
        done: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda done=done: Client(load, done),  # type: ignore[misc]
            "127.0.0.1",
            port,
        )
        dones.append(done)
        transports.append(transport)
    try:
        await asyncio.gather(*dones)
    finally:
        for transport in transports:
            transport.close()
    elapsed = time.perf_counter() - started
    done_count = sum(load.statuses.values())
    return {
        "requests": done_count,
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(done_count / elapsed, 1),
        "server_cpu_s": round(proc_cpu(server_pid) - cpu_server, 2),
        "server_system_cpu_s": round(proc_cpu_split(server_pid)[1] - system, 2),
        "client_cpu_s": round(time.process_time() - cpu_client, 2),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "errors": {str(k): v.decode(errors="replace") for k, v in load.bodies.items()},
        "capped": load.capped,
    }


def build_request(port: int, method: str, path: str, key: str | None, body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def payload(i: int, size: int) -> dict[str, Any]:
    return {"order_id": i, "status": "filled", "data": "x" * size}


def single_requests(port: int, key: str, size: int, variants: int = 256) -> list[bytes]:
    return [
        build_request(
            port,
            "POST",
            "/v1/events",
            key,
            json.dumps({"type": EVENT_TYPE, "payload": payload(i, size)}).encode(),
        )
        for i in range(variants)
    ]


def batch_requests(port: int, key: str, size: int, batch: int, variants: int = 4) -> list[bytes]:
    out = []
    for v in range(variants):
        events = [
            {"type": EVENT_TYPE, "payload": payload(v * batch + i, size)} for i in range(batch)
        ]
        body = json.dumps({"events": events}).encode()
        out.append(build_request(port, "POST", "/v1/events/batch", key, body))
    return out


# the run ----------------------------------------------------------------------------------------
async def drain(receiver_port: int, expected: int, cap: float) -> dict[str, Any]:
    started = time.monotonic()
    count = await asyncio.to_thread(receiver_count, receiver_port)
    while count < expected and time.monotonic() - started < cap:
        await asyncio.sleep(0.25)
        count = await asyncio.to_thread(receiver_count, receiver_port)
    waited = round(time.monotonic() - started, 2)
    return {"delivered": count, "expected": expected, "waited_s": waited}


class PySpy:
    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(rate), "--threads", "--format",
             "raw", "--nonblocking", "--function", "--output", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        line = _readline(self.proc.stdout, 10.0)
        if "Sampling" not in line:
            self.stop()
            raise RuntimeError(f"py-spy did not start: {line!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=10)


async def run(args: argparse.Namespace, out_dir: Path, stamp: str) -> dict[str, Any]:
    api_key = "hk_bench" + "0" * 32
    results: dict[str, Any] = {"phases": {}}
    tmp = Path(tempfile.mkdtemp(prefix="hookd-publish-http-", dir=args.tmpdir))
    receiver: subprocess.Popen[str] | None = None
    server: subprocess.Popen[str] | None = None
    try:
        receiver, receiver_port = start_receiver()
        port = free_port()
        server, log = start_hookd(args.command, tmp, port, api_key, args.src)
        endpoint = api_call(
            port,
            api_key,
            "POST",
            "/v1/endpoints",
            {"url": f"http://127.0.0.1:{receiver_port}/hook", "event_types": [EVENT_TYPE]},
        )
        results["endpoint"] = endpoint["id"]
        health = [build_request(port, "GET", "/healthz", None, None)]
        single = single_requests(port, api_key, args.payload_bytes)
        published = 0
        raw = out_dir / f"pyspy-publish-http-{stamp}.txt"

        async def phase(name: str, requests: list[bytes], count: int, conc: int, per: int) -> None:
            nonlocal published
            step(f"{name}: {count} requests x {per} events, {conc} connections")
            spy = PySpy(server.pid, raw) if name in args.pyspy else None
            try:
                result = await run_load(port, requests, count, conc, args.cap, server.pid)
            finally:
                if spy is not None:
                    spy.stop()
            result["events_per_request"] = per
            result["events_per_s"] = round(result["requests_per_s"] * per, 1)
            result["concurrency"] = conc
            if per:
                published += result["statuses"].get("202", 0) * per
                if args.command == "serve":
                    result["drain"] = await drain(receiver_port, published, args.drain_cap)
            results["phases"][name] = result
            step(
                f"  {result['requests_per_s']:,.0f} req/s, {result['events_per_s']:,.0f} events/s,"
                f" server CPU {result['server_cpu_s']} s, client CPU {result['client_cpu_s']} s,"
                f" statuses {result['statuses']}"
            )

        # warm-up: connections, caches, the first transactions
        await run_load(port, health, 500, args.concurrency, args.cap, server.pid)
        await phase("warmup", single, 500, args.concurrency, 1)
        results["phases"].pop("warmup")
        await phase("baseline_before", health, args.requests, args.concurrency, 0)
        await phase("single", single, args.requests, args.concurrency, 1)
        for size in args.batch_sizes:
            requests = batch_requests(port, api_key, args.payload_bytes, size)
            count = max(1, args.batch_events // size)
            await phase(f"batch_{size}", requests, count, args.batch_concurrency, size)
        await phase("baseline_after", health, args.requests, args.concurrency, 0)
        if args.pyspy and raw.exists():
            sys.path.insert(0, str(HERE))
            from pyspy_top import top_functions

            results["pyspy"] = {"file": raw.name, "phase": args.pyspy, **top_functions(raw, 25)}
        results["server_log_tail"] = log.read_text()[-2000:]
    finally:
        _stop(server)
        _stop(receiver)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    phases = results["phases"]
    before = phases["baseline_before"]["requests_per_s"]
    after = phases["baseline_after"]["requests_per_s"]
    base = (before + after) / 2
    rows = [
        {
            "phase": "baseline GET /healthz",
            "req_s": base,
            "events_s": None,
            "ratio": 1.0,
            "note": f"before {before:,.0f}, after {after:,.0f}",
        }
    ]
    for name, p in phases.items():
        if name.startswith("baseline"):
            continue
        events = p["events_per_s"]
        cpu = p["server_cpu_s"] / max(1, p["requests"] * p["events_per_request"]) * 1e6
        bad = sum(v for k, v in p["statuses"].items() if k != "202")
        system = p["server_system_cpu_s"] / max(1e-9, p["server_cpu_s"]) * 100
        note = f"server CPU {cpu:.0f} µs/event ({system:.0f} % system)"
        if bad or p["capped"]:
            note += f" ⚠ {'capped ' if p['capped'] else ''}{bad} non-202"
        rows.append(
            {
                "phase": name,
                "req_s": p["requests_per_s"],
                "events_s": events,
                "ratio": round(p["requests_per_s"] / base, 3),
                "note": note,
            }
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# publish over HTTP — {meta['stamp']}",
        "",
        f"`hookd {meta['command']}` (SQLite, synchronous=FULL), one endpoint per event, "
        f"{meta['concurrency']} connections (batches: {meta['batch_concurrency']}), payload "
        f"{meta['payload_bytes']} B, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"commit {meta['commit']}.",
        "",
        "| phase | requests/s | events/s | req/s ÷ baseline | notes |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in results["rows"]:
        events = "" if row["events_s"] is None else f"{row['events_s']:,.0f}"
        lines.append(
            f"| {row['phase']} | {row['req_s']:,.0f} | {events} | {row['ratio']:.3f} | "
            f"{row['note']} |"
        )
    if "pyspy" in results:
        spy = results["pyspy"]
        lines += [
            "",
            f"py-spy during {spy['phase']} ({spy['file']}, {spy['total_samples']} busy samples, "
            f"threads {spy['threads']}):",
            "",
        ]
        lines += ["| self % | cum % | function |", "| ---: | ---: | --- |"]
        for row in spy["by_self"][:20]:
            lines.append(f"| {row['self_s']} | {row['cum_s']} | `{row['function']}` |")
    return "\n".join(lines) + "\n"


def step(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and caps")
    parser.add_argument("--requests", type=int, default=30_000, help="single/baseline requests")
    parser.add_argument("--batch-events", type=int, default=200_000, help="events per batch phase")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[500, 1000])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds per phase at most")
    parser.add_argument("--drain-cap", type=float, default=60.0, help="seconds to drain at most")
    parser.add_argument("--command", choices=["serve", "api"], default="serve")
    parser.add_argument(
        "--pyspy",
        metavar="PHASE",
        default="",
        help="profile the server with py-spy during this phase (single, batch_500, …)",
    )
    parser.add_argument(
        "--src", type=Path, default=ROOT / "src", help="hookd sources to serve (default: ours)"
    )
    parser.add_argument(
        "--ab",
        type=Path,
        metavar="SRC",
        help="first run the same phases against the hookd sources in SRC (e.g. a copy of the "
        "tree before a change), then --src; writes a before/after table",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 5_000)
        args.batch_events = min(args.batch_events, 30_000)
        args.cap = min(args.cap, 20.0)
        args.drain_cap = min(args.drain_cap, 20.0)
    return args


def ab_markdown(before: dict[str, Any], after: dict[str, Any]) -> str:
    """One table: each phase's events/s (req/s for the baseline) and its ratio to the baseline
    of its own run, for the `--ab` tree and for this one."""
    lines = [
        f"# publish over HTTP, A/B — {after['meta']['stamp']}",
        "",
        f"`hookd {after['meta']['command']}`; before: `{before['meta']['src']}`, after: "
        f"`{after['meta']['src']}`; each run against its own baseline (GET /healthz).",
        "",
        "| phase | before | after | after ÷ before | before ÷ baseline | after ÷ baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for old, new in zip(before["rows"], after["rows"], strict=True):
        value = "events_s" if new["events_s"] is not None else "req_s"
        a, b = old[value], new[value]
        unit = "events/s" if value == "events_s" else "req/s"
        lines.append(
            f"| {new['phase']} ({unit}) | {a:,.0f} | {b:,.0f} | {b / a:.2f} | "
            f"{old['ratio']:.3f} | {new['ratio']:.3f} |"
        )
    cpu = [f"- {old['phase']}: {old['note']} → {new['note']}" for old, new in zip(
        before["rows"][1:], after["rows"][1:], strict=True)]  # fmt: skip
    return "\n".join([*lines, "", "Server CPU (user + system, all threads):", "", *cpu]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    trees = [args.ab, args.src] if args.ab is not None else [args.src]
    for src in trees:
        results = measure(args, src)
        runs.append(results)
    if args.ab is not None:
        text = ab_markdown(runs[0], runs[1])
        stamp = runs[1]["meta"]["stamp"]
        (args.out / f"publish-http-ab-{stamp}-{args.command}.md").write_text(text)
        (args.out / f"latest-publish-http-ab-{args.command}.md").write_text(text)
        print(text)
    ok = all(
        not p["capped"] and set(p["statuses"]) <= ({"202"} if p["events_per_request"] else {"200"})
        for results in runs
        for p in results["phases"].values()
    )
    return 0 if ok else 1


def measure(args: argparse.Namespace, src: Path) -> dict[str, Any]:
    """One run against the hookd sources in `src`; writes its JSON and Markdown."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    args.src = src
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        results = runner.run(run(args, args.out, stamp))
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    results["meta"] = {
        "stamp": stamp,
        "command": args.command,
        "src": str(src),
        "concurrency": args.concurrency,
        "batch_concurrency": args.batch_concurrency,
        "payload_bytes": args.payload_bytes,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit + " (+ uncommitted changes)" if commit else "?",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    results["rows"] = summarize(results)
    suffix = "-profiled" if args.pyspy else "-quick" if args.quick else ""
    name = f"publish-http-{stamp}{suffix}"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / f"{name}.md").write_text(text)
    if src == ROOT / "src":
        (args.out / f"latest-publish-http{suffix}.md").write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    sys.exit(main())
