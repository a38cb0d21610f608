"""The campaign page's "What works" card: the statistics series as a server-rendered SVG
line chart (with a title, a description and the same figures as a table), and the per
step / per variant table with the leading variant marked only when a two-proportion
z-test at 95 % says its reply rate beats every other variant's (domain.stats)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from drumbeat.domain import stats as rules

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36
# (metric, label, colour, dash): dashes tell the lines apart without colour too.
LINES = (("sent", "Sent", "#1e40af", ""), ("delivered", "Delivered", "#166534", "6 3"),
         ("read", "Read", "#5b21b6", "2 3"), ("replied", "Replied", "#92400e", "10 4 2 4"),
         ("failed", "Failed", "#991b1b", "1 5"))
SIGNIFICANCE = ("A variant is marked leading only when its reply rate beats every other variant of its step "
                "in a two-proportion z-test at 95 % confidence (two-sided, |z| ≥ 1.96); until then the "
                "difference may be chance.")


def variant_name(index: int | None) -> str:
    return "—" if index is None else chr(ord("A") + index)


def performance(result: dict, zone: str) -> dict:
    """What _performance.html draws, from services.stats.campaign_stats."""
    return {"chart": chart(result["series"], result["interval"], zone), "steps": step_tables(result["steps"]),
            "significance": SIGNIFICANCE, "interval": result["interval"]}


def _label(at: datetime, interval: str, zone: str) -> str:
    local = at.astimezone(ZoneInfo(zone))
    return local.strftime("%d %b") if interval == "day" else local.strftime("%d %b %H:%M")


def chart(series: list[dict], interval: str, zone: str) -> dict:
    n = len(series)
    top = max([pt[m] for pt in series for m, *_ in LINES] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: int) -> float:
        return TOP + plot_h - plot_h * v / top

    lines = [{"label": label, "colour": colour, "dash": dash, "total": sum(pt[m] for pt in series),
              "points": " ".join(f"{x(i):.1f},{y(pt[m]):.1f}" for i, pt in enumerate(series)),
              # Dots where few buckets are drawn: a single bucket has no line to show.
              "dots": [(round(x(i), 1), round(y(pt[m]), 1)) for i, pt in enumerate(series)] if n <= 60 else []}
             for m, label, colour, dash in LINES]
    ticks = sorted({0, n // 2, n - 1}) if n else []
    totals = ", ".join(f"{line['label'].lower()} {line['total']}" for line in lines)
    span = f"{_label(series[0]['at'], interval, zone)} to {_label(series[-1]['at'], interval, zone)}" if n else ""
    return {
        "width": WIDTH, "height": HEIGHT, "lines": lines, "top": top, "y_top": y(top), "y_zero": y(0),
        "x_left": LEFT, "x_right": WIDTH - RIGHT,
        "x_ticks": [{"x": x(i), "label": _label(series[i]["at"], interval, zone)} for i in ticks],
        "title": f"Sends, deliveries, reads, replies and failures per {interval}",
        "desc": (f"Line chart of {n} {interval}s from {span} ({zone} time); totals: {totals}. "
                 "The same figures are in the table below the chart.") if n else "No data yet.",
        "rows": [{"at": _label(pt["at"], interval, zone), **{m: pt[m] for m, *_ in LINES}} for pt in series],
    }


def step_tables(steps: list[dict]) -> list[dict]:
    out = []
    for step in steps:
        leader = rules.leading_variant([(v["replied"], v["sent"]) for v in step["variants"]])
        rows = []
        for i, v in enumerate(step["variants"]):
            rate = v["reply_rate"]
            rows.append({**v, "name": variant_name(v["variant"]),
                         "rate": "—" if rate is None else f"{rate * 100:.1f} %",
                         "leading": bool(leader and leader.significant and leader.index == i)})
        out.append({"step": step["step"], "channel": step["channel"], "rows": rows,
                    "verdict": _verdict(leader, step["variants"])})
    return out


def _verdict(leader: rules.Leader | None, variants: list[dict]) -> str | None:
    if leader is None:
        return None
    if leader.significant:
        return f"Variant {variant_name(variants[leader.index]['variant'])} leads (significant at 95 %)."
    return "No variant leads yet: the difference is not significant at 95 %."
