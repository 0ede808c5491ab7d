"""HTTP client benchmark: signed webhook POSTs through raw aiohttp, `HttpSender` and `NativeSender`.

    PYTHONPATH=src python bench/http_client.py --quick      # N=5,000 per client, 2 rounds: ~15 s
    PYTHONPATH=src python bench/http_client.py              # N=20,000 per client, 3 rounds
    PYTHONPATH=src python bench/http_client.py --clients native --rounds 1 --requests 100000

The receiver is bench/receiver.py in its own process on 127.0.0.1 (204 No Content, keep-alive).
Each client posts N requests with concurrency C (256): C tasks take the next index until N are
sent. Every request is what hookd's worker sends: a fresh `wire_body` (~470 B) and the headers of
`build_headers` (Standard Webhooks signature computed per request, fresh `webhook-id`), so the
signing cost is in every figure alike. Clients:

- aiohttp: a raw `ClientSession` loop built like hookd's (TCPConnector(limit=C,
  limit_per_host=0), no auto-decompress, dummy cookie jar), reading each body: the baseline.
- HttpSender: hookd's aiohttp sender (`max_connections=C`), through `send()`.
- NativeSender: hookd.delivery.http1 (`max_connections=C`), through `send()`.

Before each measured phase the client sends C requests as a warm-up (connections opened, not
timed). Figures: requests/s (wall clock) and CPU µs per request (`time.process_time()` of this
process, all threads; the receiver is another process), each as a ratio against aiohttp's in the
same round. With several rounds the clients alternate within each round and the median of the
rounds is reported, with the spread of aiohttp's rate as a noise gauge.

Bounded by count and by a time cap per phase (`--cap`); 127.0.0.1 only; the receiver child is
always stopped. The exit code is 1 when a phase was not valid (time cap, a non-2xx, or the
receiver's count differs from what was sent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "src") not in sys.path:  # so it also runs without PYTHONPATH=src
    sys.path.insert(0, str(ROOT / "src"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from e2e import Receiver  # noqa: E402  (bench/receiver.py in a child process)
from hookd.delivery.http1 import NativeSender  # noqa: E402
from hookd.delivery.sender import HttpSender, Sender  # noqa: E402
from hookd.delivery.ssrf import AddressPolicy  # noqa: E402
from hookd.delivery.worker import build_headers  # noqa: E402
from hookd.domain import ids  # noqa: E402
from hookd.domain.models import DEFAULT_TENANT, Endpoint, EndpointSecret, Secret  # noqa: E402
from hookd.policy import retry, signing  # noqa: E402
from hookd.store.codec import wire_body  # noqa: E402

EVENT_TYPE = "order.filled"
PAYLOAD_SIZE = 400  # the event's data JSON; the signed body is ~470 B
CLIENTS = {"aiohttp": "raw aiohttp ClientSession", "sender": "HttpSender", "native": "NativeSender"}


# --------------------------------------------------------------------------------------------
# workload


def make_payload(i: int, size: int) -> bytes:
    """A realistic-looking order, padded so that its JSON is about `size` bytes."""
    payload: dict[str, Any] = {
        "order_id": f"ord_{i:012d}",
        "status": "filled",
        "customer": {"id": f"cus_{i % 9973:06d}", "tier": "gold"},
        "items": [
            {"sku": "SKU-1001", "qty": 2, "unit_price": 1999},
            {"sku": "SKU-2002", "qty": 1, "unit_price": 4999},
        ],
        "total": 8997,
        "currency": "EUR",
        "note": "",
    }
    missing = size - len(orjson.dumps(payload))
    if missing > 0:
        payload["note"] = "x" * missing
    return orjson.dumps(payload)


class Workload:
    """Signed requests as hookd's worker makes them, one per call (or made in advance)."""

    def __init__(self, url: str) -> None:
        now = time.time()
        self.endpoint = Endpoint(
            id=ids.new_id(ids.ENDPOINT),
            tenant_id=DEFAULT_TENANT,
            url=url,
            event_types=("order.*",),
            secrets=(EndpointSecret(Secret(signing.generate_secret()), now),),
            retry_policy=retry.DEFAULT_POLICY,
            timeout=15.0,
            created_at=now,
            updated_at=now,
        )
        self.payloads = [make_payload(i, PAYLOAD_SIZE) for i in range(1000)]
        self.presigned: list[tuple[bytes, dict[str, str]]] = []

    def presign(self, n: int) -> None:
        """Make n requests now, so that `request` costs nothing: the figures are the client's."""
        self.presigned = [self.sign(i) for i in range(n)]

    def request(self, i: int) -> tuple[bytes, dict[str, str]]:
        if self.presigned:
            return self.presigned[i % len(self.presigned)]
        return self.sign(i)

    def sign(self, i: int) -> tuple[bytes, dict[str, str]]:
        sent_at = time.time()
        body = wire_body(EVENT_TYPE, sent_at, self.payloads[i % len(self.payloads)])
        return body, build_headers(self.endpoint, ids.new_id(ids.DELIVERY), body, sent_at)


# --------------------------------------------------------------------------------------------
# phases

Post = Callable[[int], Awaitable[bool]]


async def drive(post: Post, n: int, concurrency: int, cap: float) -> dict[str, Any]:
    """C tasks posting until n requests are sent (or the cap); times the whole run."""
    next_index = 0
    ok = 0
    failed = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    deadline = started + cap

    async def client() -> None:
        nonlocal next_index, ok, failed
        while next_index < n and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            if await post(i):
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {
        "n": n,
        "done": ok,
        "failed": failed,
        "seconds": round(elapsed, 4),
        "per_second": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_seconds": round(cpu, 4),
        "cpu_us_per_request": round(cpu / ok * 1e6, 2) if ok else None,
        "hit_time_cap": ok + failed < n,
        "sent": ok + failed,
    }


async def phase_aiohttp(work: Workload, n: int, concurrency: int, cap: float) -> dict[str, Any]:
    url = work.endpoint.url
    timeout = aiohttp.ClientTimeout(total=work.endpoint.timeout)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=10)
    async with aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    ) as session:

        async def post(i: int) -> bool:
            body, headers = work.request(i)
            try:
                async with session.post(
                    url, data=body, headers=headers, allow_redirects=False, timeout=timeout
                ) as response:
                    await response.read()
                    return 200 <= response.status < 300
            except (aiohttp.ClientError, TimeoutError):
                return False

        warm = await drive(post, concurrency, concurrency, cap)
        result = await drive(post, n, concurrency, cap)
    result["warmup_sent"] = warm["sent"]
    return result


async def phase_sender(
    sender: Sender, work: Workload, n: int, concurrency: int, cap: float
) -> dict[str, Any]:
    url = work.endpoint.url
    timeout = work.endpoint.timeout

    async def post(i: int) -> bool:
        body, headers = work.request(i)
        outcome = await sender.send(url, headers, body, timeout=timeout)
        return outcome.status is not None and 200 <= outcome.status < 300

    try:
        warm = await drive(post, concurrency, concurrency, cap)
        result = await drive(post, n, concurrency, cap)
    finally:
        await sender.close()
    result["warmup_sent"] = warm["sent"]
    return result


async def run_client(
    name: str, work: Workload, n: int, concurrency: int, cap: float
) -> dict[str, Any]:
    policy = AddressPolicy.allowing(["127.0.0.0/8"])
    if name == "aiohttp":
        return await phase_aiohttp(work, n, concurrency, cap)
    if name == "sender":
        return await phase_sender(
            HttpSender(policy, max_connections=concurrency), work, n, concurrency, cap
        )
    return await phase_sender(
        NativeSender(policy, max_connections=concurrency), work, n, concurrency, cap
    )


# --------------------------------------------------------------------------------------------
# report


def summarise(rounds: list[dict[str, dict[str, Any]]], clients: list[str]) -> list[dict[str, Any]]:
    rows = []
    base_rate = base_cpu = None
    if "aiohttp" in clients:
        base_rate = statistics.median(r["aiohttp"]["per_second"] for r in rounds)
        cpus = [r["aiohttp"]["cpu_us_per_request"] for r in rounds]
        base_cpu = statistics.median(c for c in cpus if c is not None) if all(cpus) else None
    for name in clients:
        runs = [r[name] for r in rounds]
        rate = statistics.median(run["per_second"] for run in runs)
        cpus = [run["cpu_us_per_request"] for run in runs]
        cpu = statistics.median(c for c in cpus if c is not None) if all(cpus) else None
        rate_ratios = (
            [
                run["per_second"] / r["aiohttp"]["per_second"]
                for run, r in zip(runs, rounds, strict=True)
            ]
            if base_rate
            else []
        )
        rows.append(
            {
                "client": name,
                "label": CLIENTS[name],
                "per_second": rate,
                "cpu_us_per_request": cpu,
                "rate_ratio": round(rate / base_rate, 3) if base_rate else None,
                "cpu_ratio": round(cpu / base_cpu, 3) if base_cpu and cpu else None,
                "rate_ratio_per_round": [round(x, 3) for x in rate_ratios],
                "valid": all(
                    not run["hit_time_cap"] and run["failed"] == 0 and run["done"] == run["n"]
                    for run in runs
                ),
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    out = [
        f"# hookd HTTP client benchmark — {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"N={cfg['requests']:,} signed POSTs per client and round, concurrency="
        f"{cfg['concurrency']}, body {results['body_bytes']} B, {cfg['rounds']} round(s), "
        f"cap={cfg['cap']:g} s/phase{' (quick)' if cfg['quick'] else ''}, "
        f"{'pre-signed (client cost only)' if cfg['presigned'] else 'signed per request'}, "
        f"loop {results['machine']['event_loop']}",
        "",
        "| client | requests/s | ratio vs aiohttp | CPU µs/request | CPU ratio vs aiohttp |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"]:
        flag = "" if row["valid"] else " ⚠"
        out.append(
            f"| {row['label']}{flag} | {_fmt(row['per_second'])} | "
            f"{'n/a' if row['rate_ratio'] is None else format(row['rate_ratio'], '.2f')} | "
            f"{_fmt(row['cpu_us_per_request'])} | "
            f"{'n/a' if row['cpu_ratio'] is None else format(row['cpu_ratio'], '.2f')} |"
        )
    out += [
        "",
        "Medians over the rounds. Rate ratio: higher is better; CPU ratio: lower is better. CPU is",
        "this process's (the client, signing included), not the receiver's.",
        "",
    ]
    if len(results["rounds"]) > 1 and "aiohttp" in cfg["clients"]:
        rates = [r["aiohttp"]["per_second"] for r in results["rounds"]]
        spread = (max(rates) - min(rates)) / statistics.fmean(rates) * 100
        out.append(
            f"- aiohttp rate per round: {', '.join(_fmt(x) for x in rates)} "
            f"(spread {spread:.1f}% of the mean: the machine's noise)"
        )
        for row in results["rows"]:
            if row["rate_ratio_per_round"]:
                out.append(
                    f"- {row['label']} rate ratio per round: "
                    f"{', '.join(format(x, '.2f') for x in row['rate_ratio_per_round'])}"
                )
        out.append("")
    out.append(
        f"- receiver count {_fmt(results['receiver_count'])}, sent {_fmt(results['sent_total'])}"
    )
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in results["machine"].items()]
    out.append("")
    return "\n".join(out)


def machine_info(loop_name: str) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    import httptools

    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "event_loop": loop_name,
        "aiohttp": aiohttp.__version__,
        "httptools": httptools.__version__,
        "commit": commit,
    }


# --------------------------------------------------------------------------------------------
# main


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, loop_name: str) -> dict[str, Any]:
    clients: list[str] = args.clients
    results: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "config": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "cap": args.cap,
            "quick": args.quick,
            "clients": clients,
            "presigned": args.presigned,
        },
        "machine": machine_info(loop_name),
        "rounds": [],
    }
    receiver = Receiver(uvloop=not args.no_uvloop)
    receiver.start()
    sent = 0
    try:
        work = Workload(receiver.url)
        if args.presigned:
            step(f"pre-signing {args.requests:,} requests")
            work.presign(args.requests)
        results["body_bytes"] = len(work.request(0)[0])
        for number in range(args.rounds):
            order = clients[number % len(clients) :] + clients[: number % len(clients)]
            this: dict[str, dict[str, Any]] = {}
            for name in order:
                result = await run_client(name, work, args.requests, args.concurrency, args.cap)
                sent += result["sent"] + result["warmup_sent"]
                this[name] = result
                step(
                    f"round {number + 1}: {CLIENTS[name]}: {result['per_second']:,.0f} req/s, "
                    f"{result['cpu_us_per_request']} CPU µs/request"
                )
            results["rounds"].append(this)
    finally:
        count = receiver.stop()
    results["receiver_count"] = count
    results["sent_total"] = sent
    results["rows"] = summarise(results["rounds"], clients)
    if count != sent:
        for row in results["rows"]:
            row["valid"] = False
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="HTTP client benchmark: raw aiohttp vs HttpSender vs NativeSender."
    )
    parser.add_argument("--requests", type=int, default=None, help="N per client and round")
    parser.add_argument("--concurrency", type=int, default=256, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (3; --quick: 2)")
    parser.add_argument("--cap", type=float, default=60.0, help="time cap per phase, seconds")
    parser.add_argument("--quick", action="store_true", help="N=5,000, 2 rounds, cap 15 s")
    parser.add_argument(
        "--clients",
        default="aiohttp,sender,native",
        help=f"comma list of: {', '.join(CLIENTS)} (aiohttp is the ratios' baseline)",
    )
    parser.add_argument(
        "--presigned",
        action="store_true",
        help="sign the requests before timing: the CPU figures are then the client's alone",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 5_000 if args.quick else 20_000
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    if args.quick:
        args.cap = min(args.cap, 15.0)
    args.clients = [c for c in args.clients.split(",") if c]
    unknown = set(args.clients) - set(CLIENTS)
    if unknown or not args.clients:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    if min(args.requests, args.concurrency, args.rounds) <= 0 or args.cap <= 0:
        parser.error("--requests, --concurrency, --rounds and --cap must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
            loop_name = f"uvloop {getattr(uvloop, '__version__', '?')}"
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(run(args, loop_name))
    text = markdown(results)
    print(text)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = (
        ("-quick" if args.quick else "")
        + ("-presigned" if args.presigned else "")
        + ("-partial" if set(args.clients) != set(CLIENTS) else "")
    )
    base = args.out / f"http-client-{stamp}{suffix}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    base.with_suffix(".md").write_text(text + "\n")
    (args.out / f"latest-http-client{suffix}.md").write_text(text + "\n")
    step(f"wrote {base}.json, {base}.md, latest-http-client{suffix}.md")
    return 0 if all(row["valid"] for row in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
