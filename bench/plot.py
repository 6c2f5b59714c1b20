"""A small scatter plot with Pillow (no plotting library in the project): queries per job against p95."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

W, H, LEFT, RIGHT, TOP, BOTTOM = 900, 560, 80, 330, 80, 70
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def latency_plot(
    points: list[tuple[str, dict[str, Any]]], path: Path, subtitle: str = "", goal_queries: float = 2.0
) -> None:
    pts = [(label, x["latency_p95_s"], x["queries_per_job"]) for label, x in points
           if x.get("latency_p95_s") is not None and x.get("queries_per_job") is not None]  # fmt: skip
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((LEFT, 12), "Provider queries per job vs p95 notification latency", fill="black", font=font)
    draw.text((LEFT, 28), subtitle, fill="#555555", font=font)
    x0, y0, x1, y1 = LEFT, H - BOTTOM, W - RIGHT, TOP
    draw.line([(x0, y0), (x1, y0)], fill="black")
    draw.line([(x0, y0), (x0, y1)], fill="black")
    if not pts:
        img.save(path)
        return
    xmax = max(15.0, max(p for _, p, _ in pts)) * 1.1
    # queries per job on a log2 scale: the SDK loop's ~40 and push's ~1 on one readable axis
    ymin, ymax = 0.5, 2 ** math.ceil(math.log2(max(8.0, max(q for _, _, q in pts)) * 1.1))

    def y_of(q: float) -> float:
        return y0 - (y0 - y1) * (math.log2(max(q, ymin)) - math.log2(ymin)) / (
            math.log2(ymax) - math.log2(ymin)
        )

    for i in range(6):
        xv = xmax * i / 5
        px = x0 + (x1 - x0) * i / 5
        draw.line([(px, y0), (px, y0 + 4)], fill="black")
        draw.text((px - 10, y0 + 8), f"{xv:.0f}", fill="black", font=font)
    yv = 1.0
    while yv <= ymax:
        py = y_of(yv)
        draw.line([(x0 - 4, py), (x0, py)], fill="black")
        draw.text((x0 - 34, py - 6), f"{yv:g}", fill="black", font=font)
        yv *= 2
    draw.text(
        ((x0 + x1) // 2 - 80, y0 + 30), "p95 latency, s (detection + processing)", fill="black", font=font
    )
    draw.text((8, y1 - 24), "queries per completed job (log scale)", fill="black", font=font)
    # the goals: p95 <= 15 s, and the queries per job of the plotted quota
    gx = x0 + (x1 - x0) * 15 / xmax
    gy = y_of(goal_queries)
    draw.line([(gx, y0), (gx, y1)], fill="#bbbbbb")
    draw.line([(x0, gy), (x1, gy)], fill="#bbbbbb")
    draw.text((gx + 4, y1), "goal region: below and left", fill="#888888", font=font)
    for i, (label, p95, q) in enumerate(pts):
        color = COLORS[i % len(COLORS)]
        px = x0 + (x1 - x0) * p95 / xmax
        py = y_of(q)
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=color)
        draw.text((px + 7, py - 6), str(i + 1), fill=color, font=font)
        draw.ellipse([W - RIGHT + 20, TOP + 18 * i + 3, W - RIGHT + 28, TOP + 18 * i + 11], fill=color)
        draw.text((W - RIGHT + 34, TOP + 18 * i), f"{i + 1}. {label}"[:48], fill="black", font=font)
        draw.text((W - RIGHT + 46, TOP + 18 * i + 9), "", fill="black", font=font)
    img.save(path)
