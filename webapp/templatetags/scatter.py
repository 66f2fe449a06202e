"""A server-side SVG scatter plot (the sweep page: score against trainable parameters and against training
time), with a log scale for values that span orders of magnitude. Loaded with {% load scatter %}."""

import math

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from .charts import COLOURS, _fmt, nice_ticks

register = template.Library()


def _log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten covering [low, high] (with 2 and 5 between when the span is under two decades)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1, 2, 5) if last - first <= 2 else (1,)
    return [m * 10**e for e in range(first, last + 1) for m in steps if low <= m * 10**e <= high] or [low, high]


@register.simple_tag
def scatter_chart(points: list, x_key: str, y_key: str, x_label: str, y_label: str, log_x: bool = False) -> str:
    """points: dicts with x_key and y_key values, "label" (hover text), "group" (colour) and "best" (ringed).
    Points without both values are left out; none at all says so."""
    shown = [p for p in points if isinstance(p.get(x_key), (int, float)) and isinstance(p.get(y_key), (int, float))]
    if log_x:
        shown = [p for p in shown if p[x_key] > 0]
    if not shown:
        return mark_safe('<p class="muted">No finished jobs to plot yet.</p>')
    width, height, left, right, top, bottom = 420, 260, 56, 14, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs, ys = [p[x_key] for p in shown], [p[y_key] for p in shown]
    if log_x:
        x0, x1 = min(xs) / 1.5, max(xs) * 1.5
        fx, ticks_x = math.log10, _log_ticks(x0, x1)
    else:
        pad = (max(xs) - min(xs)) * 0.08 or max(abs(max(xs)) * 0.1, 1)
        x0, x1 = min(xs) - pad, max(xs) + pad
        fx, ticks_x = (lambda v: v), [t for t in nice_ticks(x0, x1, 5) if x0 <= t <= x1]
    pad_y = (max(ys) - min(ys)) * 0.1 or 0.05
    y0, y1 = min(ys) - pad_y, max(ys) + pad_y
    ticks_y = [t for t in nice_ticks(y0, y1, 5) if y0 <= t <= y1]

    def sx(v):
        return left + (fx(v) - fx(x0)) / (fx(x1) - fx(x0)) * plot_w

    def sy(v):
        return top + (1 - (v - y0) / (y1 - y0)) * plot_h

    groups = list(dict.fromkeys(p.get("group", "") for p in shown))
    parts = [
        f'<svg class="chart scatter" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(y_label)} against {escape(x_label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for tick in ticks_y:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end" class="tick">{_fmt(tick)}</text>')
    for tick in ticks_x:
        x = sx(tick)
        anchor = "end" if x > left + plot_w - 24 else "middle"
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#999"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" class="tick">{_fmt(tick)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 3}" text-anchor="middle" class="tick">'
        f"{escape(x_label)}{' (log scale)' if log_x else ''}</text>"
    )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2:.1f}" transform="rotate(-90 12 {top + plot_h / 2:.1f})" '
        f'text-anchor="middle" class="tick">{escape(y_label)}</text>'
    )
    for p in shown:
        colour = COLOURS[groups.index(p.get("group", "")) % len(COLOURS)]
        x, y = sx(p[x_key]), sy(p[y_key])
        ring = (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="#111" stroke-width="1.5"/>'
            if p.get("best")
            else ""
        )
        parts.append(
            f'{ring}<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}" data-label="{escape(p.get("label", ""))}">'
            f"<title>{escape(p.get('label', ''))}: {escape(y_label)} {_fmt(p[y_key])}, {escape(x_label)} "
            f"{_fmt(p[x_key])}</title></circle>"
        )
    for i, group in enumerate(groups):
        if group:
            parts.append(
                f'<text x="{left + plot_w - 4}" y="{top + 14 + 14 * i}" text-anchor="end" '
                f'fill="{COLOURS[i % len(COLOURS)]}" class="legend">{escape(group)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))
