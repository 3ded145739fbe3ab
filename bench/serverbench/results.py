"""Runs to figures: the median of each metric over rounds, and result files merged."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .loadgen import Metrics


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def median_merge(rounds: Sequence[Mapping[str, float | None]]) -> Metrics:
    """Per-metric medians over rounds: every key seen in any round, Nones ignored."""
    keys: list[str] = []
    for r in rounds:
        keys.extend(k for k in r if k not in keys)
    return {k: median(r.get(k) for r in rounds) for k in keys}


def flatten(run: Mapping[str, Any]) -> Metrics:
    """The scalar metrics of one run as 'section.metric' keys (what gets median-merged)."""
    flat: Metrics = {}
    for pname, p in run.get("passes", {}).items():
        for k, v in p.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                flat[f"{pname}.{k}"] = float(v)
    for cname, probe in run.get("served", {}).items():
        flat[f"served.{cname}"] = float(probe["served"])
        flat[f"served.{cname}.connections"] = float(probe["connections"])
    for k, v in run.get("mem", {}).items():
        if isinstance(v, (int, float)):
            flat[f"mem.{k}"] = float(v)
    if isinstance(run.get("ready_s"), (int, float)):
        flat["ready_s"] = float(run["ready_s"])
    return flat


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    s: dict[str, Any] = {
        "rounds": len(runs),
        "rounds_ok": len(ok),
        "errors_seen": [r["error"] for r in runs if "error" in r],
        "metrics": median_merge([flatten(r) for r in ok]),
        "rps_rounds": {},
    }
    for r in ok:
        for pname, p in r.get("passes", {}).items():
            s["rps_rounds"].setdefault(pname, []).append(p.get("rps"))
    if runs:
        s["server"], s["scenario"] = runs[0]["server"], runs[0]["scenario"]
        s["workers"] = runs[0]["workers"]
    return s


def merge_results(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Runs of several result files; a later file replaces an earlier one per server/scenario."""
    runs: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for d in docs:
        for k, v in d.get("runs", {}).items():
            if v:
                runs.pop(k, None)  # re-insert so the later file's order wins too
                runs[k] = v
        skipped.update(d.get("meta", {}).get("skipped", {}))
    for k in runs:
        skipped.pop(k, None)
    return {"runs": runs, "skipped": skipped}
