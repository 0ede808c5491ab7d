"""Top functions from a py-spy `--format raw` file (collapsed stacks), by self and cumulative.

    python bench/pyspy_top.py bench/results/pyspy-….txt [--top 15]

Each raw line is `frame;frame;…;leaf COUNT`, root first. Self samples go to the leaf frame;
cumulative samples go once to every distinct function on the stack. Idle samples are not in the
file (py-spy drops them unless `--idle`), so the percentages are of busy samples in all threads.
With `--threads` the first frame names the thread; those frames are counted per thread.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    return f"{path}:{match['name']}"


def top_functions(path: Path, n: int = 15) -> dict[str, Any]:
    self_counts: Counter[str] = Counter()
    cum_counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for raw in path.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            threads[frames[0]] += count
            frames = frames[1:]
        if not frames:
            continue
        total += count
        names = [_short(f) for f in frames]
        self_counts[names[-1]] += count
        for name in set(names):
            cum_counts[name] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "samples": c,
                "pct": round(100 * c / total, 1) if total else 0.0,
                "self_s": round(100 * self_counts[name] / total, 1) if total else 0.0,
                "cum_s": round(100 * cum_counts[name] / total, 1) if total else 0.0,
            }
            for name, c in counter.most_common(n)
        ]

    return {
        "total_samples": total,
        "threads": dict(threads.most_common()),
        "by_self": rows(self_counts),
        "by_cumulative": rows(cum_counts),
        "note": "self_s / cum_s columns are % of busy samples (all threads), not seconds",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    result = top_functions(args.raw, args.top)
    print(f"{result['total_samples']} busy samples; threads: {result['threads']}")
    for order in ("by_self", "by_cumulative"):
        print(f"\n{order}:  self%  cum%  function")
        for row in result[order]:
            print(f"  {row['self_s']:5.1f} {row['cum_s']:5.1f}  {row['function']}")


if __name__ == "__main__":
    main()
