"""The report: the markdown table and the SVG plot of the summaries, in scenario and server order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from .loadgen import Metrics
from .results import median
from .scenarios import SCENARIOS
from .servers import servers


def fmt(v: float | None, nd: int = 0) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


TABLE_HEADER = [
    "server",
    "scenario",
    "workers",
    "rps keep-alive",
    "rps close",
    "rps c100",
    "p50 ms",
    "p99 ms (c100)",
    "errors",
    "conns served c10 / c100",
    "server CPU µs/req",
    "close CPU µs/req",
    "master USS MB",
    "mean worker USS MB",
    "tree PSS MB",
    "start_server RSS MB",
    "ka spread",
]


def table_row(s: Mapping[str, Any]) -> list[str]:
    m: Metrics = s["metrics"]
    head = [s["server"], s["scenario"], str(s["workers"])]
    if not s["rounds_ok"]:
        why = "; ".join(s["errors_seen"])[:150].replace("|", "/")
        return head + [f"FAILED: {why}"] + ["-"] * (len(TABLE_HEADER) - 4)
    first = "ab" if "ab.rps" in m else "ka"

    def g(k: str) -> float | None:
        return m.get(k)

    errors = [g(f"{p}.errors") for p in ("ka", "close", "c100", "ab", "warm")]
    served = [
        f"{fmt(g(f'served.{c}'))}/{fmt(g(f'served.{c}.connections'))}"
        for c in ("c10", "c100")
        if g(f"served.{c}") is not None
    ]
    rounds = [v for v in s["rps_rounds"].get(first, []) if v is not None]
    spread = None
    if len(rounds) > 1 and median(rounds):
        spread = 100 * (max(rounds) - min(rounds)) / (median(rounds) or 1.0)
    p99 = fmt(g(f"{first}.p99_ms"), 1)
    if g("c100.p99_ms") is not None:
        p99 += f" ({fmt(g('c100.p99_ms'), 1)})"
    return head + [
        fmt(g(f"{first}.rps")),
        fmt(g("close.rps")),
        fmt(g("c100.rps")),
        fmt(g(f"{first}.p50_ms"), 2),
        p99,
        "-" if all(e is None for e in errors) else fmt(sum(e or 0 for e in errors)),
        " / ".join(served) or "-",
        fmt(g(f"{first}.cpu_us_per_req")),
        fmt(g("close.cpu_us_per_req")),
        fmt(g("mem.master_uss_mb"), 1),
        fmt(g("mem.mean_worker_uss_mb"), 1),
        fmt(g("mem.tree_pss_mb"), 1),
        fmt(g("mem.launcher_rss_mb"), 1),
        "-" if spread is None else f"{spread:.0f}%",
    ]


def render_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    for s in summaries:
        lines.append("| " + " | ".join(table_row(s)) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    nd: int = 0


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** int(f"{v:e}".split("e")[1])
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def render_svg(
    title: str,
    groups: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[Series],
) -> str:
    """Grouped bars: one group per label, one bar per series; each series has its own scale
    (the first on the left axis, the second on the right), and every bar carries its value.
    A label may have a second line after a newline (drawn smaller under the first)."""
    width_per_group, bar_w, left, right, top, plot_h = 110, 34, 70, 70, 60, 260
    width = left + right + max(1, len(groups)) * width_per_group
    height = top + plot_h + 70
    base = top + plot_h
    maxima = [
        _nice_max(max([v[i] or 0.0 for _, v in groups] or [0.0]))
        for i in range(len(series))
    ]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="14">'
        f"{escape(title)}</text>",
    ]
    for i, s in enumerate(series):  # legend
        lx = left + i * 230
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 16}" y="42">{escape(s.name)}</text>')
    for i in range(len(series[:2])):  # axes with 5 ticks
        ax = left if i == 0 else width - right
        anchor, dx = ("end", -4) if i == 0 else ("start", 4)
        out.append(
            f'<line x1="{ax}" y1="{top}" x2="{ax}" y2="{base}" stroke="{series[i].color}"/>'
        )
        for t in range(6):
            val = maxima[i] * t / 5
            y = base - plot_h * t / 5
            out.append(
                f'<text x="{ax + dx}" y="{y + 4:.1f}" text-anchor="{anchor}" '
                f'fill="{series[i].color}">{fmt(val, series[i].nd)}</text>'
            )
            if i == 0:
                out.append(
                    f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                    'stroke="#ddd"/>'
                )
    out.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="black"/>'
    )
    for g, (label, values) in enumerate(groups):
        gx = left + g * width_per_group + (width_per_group - bar_w * len(series)) / 2
        for i, s in enumerate(series):
            v = values[i] if i < len(values) else None
            x: float = gx + i * bar_w
            if v is None:
                out.append(
                    f'<text x="{x + bar_w / 2:.1f}" y="{base - 4}" text-anchor="middle">'
                    "n/a</text>"
                )
                continue
            h = plot_h * v / maxima[i]
            out.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w - 4}" '
                f'height="{h:.1f}" fill="{s.color}"><title>{escape(label)}: '
                f"{fmt(v, s.nd)} {escape(s.name)}</title></rect>"
            )
            out.append(
                f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{base - h - 3:.1f}" '
                f'text-anchor="middle" font-size="9">{fmt(v, s.nd)}</text>'
            )
        cx = left + g * width_per_group + width_per_group / 2
        name, _, sub = label.partition("\n")
        out.append(
            f'<text x="{cx:.1f}" y="{base + 16}" text-anchor="middle">{escape(name)}</text>'
        )
        if sub:
            out.append(
                f'<text x="{cx:.1f}" y="{base + 30}" text-anchor="middle" font-size="9" '
                f'fill="#555">{escape(sub)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_from_summaries(summaries: Sequence[Mapping[str, Any]]) -> str:
    groups: list[tuple[str, list[float | None]]] = []
    for s in summaries:
        if s.get("scenario") == "hello" and s.get("rounds_ok"):
            m = s["metrics"]
            served = " ".join(
                f"{fmt(m.get(f'served.{c}'))}/{fmt(m.get(f'served.{c}.connections'))}"
                for c in ("c10", "c100")
                if m.get(f"served.{c}") is not None
            )
            label = s["server"] + (f"\nserved {served}" if served else "")
            groups.append((label, [m.get("ka.rps"), m.get("ka.cpu_us_per_req")]))
    return render_svg(
        "hello world, wrk keep-alive c10 (medians over rounds)",
        groups,
        [
            Series("requests/s keep-alive (left axis)", "#3b6ea8"),
            Series("server CPU µs per request (right axis)", "#d9822b"),
        ],
    )


def table_order(summaries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows grouped by scenario (SCENARIOS order), servers in servers() order, unknowns last."""
    sc_rank = {sc.name: i for i, sc in enumerate(SCENARIOS)}
    srv_rank = {srv.name: i for i, srv in enumerate(servers())}

    def key(s: Mapping[str, Any]) -> tuple[int, int, str]:
        return (
            sc_rank.get(s.get("scenario", ""), 99),
            srv_rank.get(s.get("server", ""), 99),
            str(s.get("server", "")),
        )

    return sorted(summaries, key=key)


def emit(
    summaries: Sequence[Mapping[str, Any]], skipped: Mapping[str, str], svg: str | None
) -> None:
    summaries = table_order(summaries)
    print(render_table(summaries))
    for key, why in skipped.items():
        print(f"\nskipped {key}: {why}", end="")
    print()
    if svg:
        with open(svg, "w") as f:
            f.write(svg_from_summaries(summaries))
        print(f"\nplot: {svg}")
