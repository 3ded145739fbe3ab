#!/usr/bin/env python3
"""Long fuzz run of starman.http.h1: N random, mutated and well-formed inputs in random chunkings.

    python bench/fuzz.py                      # 10^6 inputs, seed 1
    python bench/fuzz.py -n 200000 --seed 7 --json /tmp/fuzz.json

Each input is checked as in tests/unit/test_h1_fuzz.py (tests/fixtures/h1_fuzz.py): no
exception but ProtocolError escapes, errors are statuses h1 may answer with, well-formed requests parse as
built, the chunking does not change the outcome, and framing agrees with a strict RFC 9112
reference on every request both accept. A hang is an input that exhausts the event budget
or takes longer than ``--hang-seconds`` (a SIGALRM watchdog). Failing inputs are saved
under ``--crash-dir`` as ``<kind>-<n>.bin``. Pure CPU, one process, no sockets.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import sys
import time
from types import FrameType

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fixtures.h1_fuzz import check, gen_input, split  # noqa: E402


class Hang(Exception):
    """The watchdog fired while one input was being checked."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="inputs to try")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-seconds", type=float, default=2.0)
    ap.add_argument("--crash-dir", default="/tmp/starman-fuzz")
    ap.add_argument("--json", help="write the summary here too")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    signal.signal(signal.SIGALRM, _alarm)
    outcomes: collections.Counter[str] = collections.Counter()
    problems: collections.Counter[str] = collections.Counter()
    requests = 0
    total_bytes = 0
    saved = 0
    start = time.monotonic()
    for i in range(args.n):
        data, generated = gen_input(rng)
        pieces = split(rng, data)
        total_bytes += len(data)
        signal.setitimer(signal.ITIMER_REAL, args.hang_seconds)
        try:
            verdict = check(data, pieces, generated)
            problem = verdict.problem
        except Hang:
            problem = "hang (watchdog)"
            verdict = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if verdict is not None:
            out = verdict.outcome
            requests += len(out.seen)
            outcomes[str(out.error) if out.error else "ok"] += 1
        if problem is not None:
            kind = (
                "crash"
                if problem.startswith("exception")
                else "hang"
                if "hang" in problem or "no progress" in problem
                else "property"
            )
            problems[kind] += 1
            if saved < 100:
                os.makedirs(args.crash_dir, exist_ok=True)
                with open(
                    os.path.join(args.crash_dir, f"{kind}-{saved}.bin"), "wb"
                ) as f:
                    f.write(data)
                saved += 1
                print(f"#{i} {kind}: {problem[:300]}", file=sys.stderr)
        if (i + 1) % 100_000 == 0:
            rate = (i + 1) / (time.monotonic() - start)
            print(
                f"{i + 1} inputs, {rate:.0f}/s, problems {dict(problems)}", flush=True
            )
    elapsed = time.monotonic() - start
    summary = {
        "inputs": args.n,
        "seed": args.seed,
        "bytes": total_bytes,
        "requests_parsed": requests,
        "outcomes": dict(sorted(outcomes.items())),
        "crashes": problems["crash"],
        "hangs": problems["hang"],
        "property_failures": problems["property"],
        "seconds": round(elapsed, 1),
        "inputs_per_second": round(args.n / elapsed),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    return 1 if sum(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
