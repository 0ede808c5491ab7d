"""A/B runs of `hookd serve` delivering to the fast receiver: configurations alternated round by
round, each round with its own raw-loop baseline, medians at the end.

    python bench/ab.py ROUNDS EVENTS NAME:[VAR=VALUE ...] NAME:[VAR=VALUE ...] ...

    python bench/ab.py 4 40000 "p1:" "p2:HOOKD_WORKER_PROCESSES=2"
    git worktree add /tmp/old HEAD~1     # the same run against an older commit of hookd:
    python bench/ab.py 3 40000 "new:" "old:PYTHONPATH=/tmp/old/src"

Each configuration's variables go into the `hookd serve` process's environment (on top of the
suite's, see bench/README.md). These 2-core machines are noisy enough that one run of each says
little: alternating configurations inside one run, and comparing every round's figures, is what
tells a 5% change from the weather. Bounded: EVENTS deliveries per run, 120 s at most each.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite

import e2e

CAP = 120.0


async def deliver(receiver: e2e.Receiver, env: dict[str, str], events: int) -> dict[str, Any]:
    """One `hookd serve` run: publish `events` to a paused endpoint, resume, time the drain."""
    hookd = suite.Hookd(
        Path(tempfile.mkdtemp(prefix="hookd-ab-")),
        client="native",
        concurrency=suite.FULL.concurrency,
        extra_env=env,
    )
    try:
        await hookd.start_server("serve")
        endpoint = await hookd.create_endpoint(receiver.url, ["order.*"], paused=True)
        await hookd.publish_many(events)
        received = await receiver.count()
        pids = hookd.server_pids()
        cpu = sum(suite.proc_cpu_seconds(pid) for pid in pids)
        await hookd.call("POST", f"/v1/endpoints/{endpoint}/resume")
        seconds, ok = await suite.wait_delivered(
            hookd, receiver, received_target=received + events, delivered_target=events, cap=CAP
        )
        cpu = sum(suite.proc_cpu_seconds(pid) for pid in pids) - cpu
    finally:
        await hookd.aclose()
    if not ok:
        raise RuntimeError(f"not every delivery was made within {CAP:g} s")
    return {"per_second": events / seconds, "cpu_us": cpu / events * 1e6}


def parse(spec: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = spec.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split() if item)
    return name, env


async def main(rounds: int, events: int, specs: list[str]) -> None:
    configs = [parse(spec) for spec in specs]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in configs}
    runs["raw loop"] = []
    receiver = e2e.Receiver(uvloop=True)
    receiver.start()
    try:
        for number in range(1, rounds + 1):
            raw = await suite.raw_native_loop(receiver.url, events, suite.FULL.concurrency, CAP)
            runs["raw loop"].append(
                {"per_second": raw["per_second"], "cpu_us": raw["cpu_us_per_item"]}
            )
            for name, env in configs:
                runs[name].append(await deliver(receiver, env, events))
            line = ", ".join(f"{k} {v[-1]['per_second']:,.0f}/s" for k, v in runs.items())
            print(f"round {number}: {line}", flush=True)
    finally:
        receiver.stop()
    print(
        "\n| configuration | median deliveries/s | median ratio to the round's raw loop | "
        "median CPU µs per delivery (every hookd process) | runs |"
    )
    print("|---|---:|---:|---:|---|")
    raw_runs = [r["per_second"] for r in runs["raw loop"]]
    for name, results in runs.items():
        rates = [r["per_second"] for r in results]
        ratios = [rate / base for rate, base in zip(rates, raw_runs, strict=True)]
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f} | "
            f"{statistics.median(r['cpu_us'] for r in results):.1f} | "
            f"{', '.join(f'{rate:,.0f}' for rate in rates)} |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
