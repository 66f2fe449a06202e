"""Server-side SVG charts: no script, no CDN, and they render in every browser and in tests."""

import math

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


def _fmt(value: float) -> str:
    """A tick's text: 12,000 rather than 1.2e+04, 0.0031 rather than 3.1e-03."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    normalised = raw / power  # 1 to 10: round to the nearest of 1, 2, 5, 10
    step = power * (1 if normalised < 1.5 else 2 if normalised < 3 else 5 if normalised < 7 else 10)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def smoothed(points: list, weight: float) -> list:
    """An exponential moving average (as TensorBoard's smoothing), debiased so it starts at the first value."""
    out, average, norm = [], 0.0, 0.0
    for x, y in points:
        average = weight * average + (1 - weight) * y
        norm = weight * norm + (1 - weight)
        out.append((x, average / norm))
    return out


HOVER_POINTS = 60  # points per curve that show their value on hover (a <title>), spread evenly


@register.simple_tag
def line_chart(
    series: dict, width: int = 640, height: int = 240, title: str = "", x_label: str = "step", x_names=None
) -> str:
    """Draw {name: [(x, y), ...]} as lines on shared axes with round ticks, a legend, and each curve's values on
    hover. A long curve is drawn faint with its smoothed line over it. x_names: {x: text} for the x ticks (dates)."""
    curves = {name: points for name, points in series.items() if points}
    if not curves:
        return mark_safe('<p class="muted">No points yet.</p>')
    xs = [x for points in curves.values() for x, _ in points]
    ys = [y for points in curves.values() for _, y in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    y_ticks = nice_ticks(y0, y1)
    left, right, top, bottom = 56, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title or ", ".join(curves))}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(tick)}</text>')
    x_ticks = [x for x in nice_ticks(x0, x1, 6) if x0 <= x <= x1] if not x_names else _named_ticks(x_names, x0, x1)
    for tick in x_ticks:
        x = sx(tick)
        name = escape(x_names.get(tick, "")) if x_names else _fmt(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#999"/>')
        # a tick at the right edge ends there: centred, its text would run past the narrow right margin
        anchor = "end" if x > left + plot_w - 24 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" class="tick">{name}</text>')
    # the axis name on a line of its own, below the tick texts, centred under the plot
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 3}" text-anchor="middle" class="tick">{escape(x_label)}</text>'
    )
    for i, (name, points) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(points) == 1:
            x, y = points[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        else:
            smooth = len(points) >= 30  # noisy per-step curves: the trend on top, the raw values faint
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            faint = ' opacity="0.3"' if smooth else ""
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}" '
                f'data-series="{escape(name)}"{faint}/>'
            )
            if smooth:
                trend = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in smoothed(points, 0.9))
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{trend}" '
                    f'data-series="{escape(name)} (smoothed)"/>'
                )
        stride = max(1, math.ceil(len(points) / HOVER_POINTS))
        for x, y in points[::stride]:
            label = escape(x_names.get(x, _fmt(x))) if x_names else f"{escape(x_label)} {_fmt(x)}"
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" class="hover"><title>{escape(name)}, {label}: '
                f"{_fmt(y)}</title></circle>"
            )
        parts.append(
            f'<text x="{left + plot_w - 4}" y="{top + 14 + 14 * i}" text-anchor="end" '
            f'fill="{colour}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _named_ticks(names: dict, x0, x1, count: int = 5) -> list:
    """About `count` evenly spread x positions that have a name (dates on a daily chart)."""
    named = sorted(x for x in names if x0 <= x <= x1)
    if len(named) <= count:
        return named
    stride = (len(named) - 1) / (count - 1)
    return [named[round(i * stride)] for i in range(count)]


@register.filter
def duration(seconds) -> str:
    # Templates hand filters "" for a missing key (an unfinished job's metrics), not None.
    if seconds in (None, ""):
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


@register.filter
def percent(value) -> str:
    return "—" if value in (None, "") else f"{100 * float(value):.1f}%"


@register.filter
def metric(value, name) -> str:
    """A metric as people read it: a loss or perplexity as a number, a score (0 to 1) as a percentage."""
    if value in (None, ""):
        return "—"
    if "loss" in str(name) or "perplexity" in str(name):
        return f"{float(value):.3f}"
    return percent(value)


@register.filter
def gain(value, name) -> str:
    """A change in a metric, signed: points for a score, the plain difference for a loss or perplexity."""
    if value in (None, ""):
        return "—"
    if "loss" in str(name) or "perplexity" in str(name):
        return f"{float(value):+.3f}"
    return f"{100 * float(value):+.1f} pts"


@register.filter
def percent_fine(value) -> str:
    """A share that may be tiny (trainable parameters): enough digits to tell 0.002% from 0.02%."""
    return "—" if value in (None, "") else f"{100 * float(value):.3g}%"


@register.filter
def label_name(label, names) -> str:
    """A label as the team named it ("1" -> "positive"), else as it is."""
    return (names or {}).get(str(label)) or str(label)


@register.filter
def label_names(labels, names) -> list[str]:
    return [label_name(label, names) for label in labels or []]


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)


@register.simple_tag
def confusion_heatmap(labels: list, matrix: list) -> str:
    """A confusion matrix as a table shaded by each cell's share of its true-label row."""
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = []
    for label, counts in zip(labels, matrix):
        total = sum(counts) or 1
        cells = "".join(
            # Shades are CSS classes, not style attributes: the Content-Security-Policy refuses inline styles.
            f'<td class="shade-{round(10 * n / total)}" title="{n / total:.0%} of {escape(label)}">{n}</td>'
            for n in counts
        )
        rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
    return mark_safe(
        f'<table class="confusion" id="confusion"><thead><tr><th>true \\ predicted</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


@register.filter
def index(values, position):
    """values[position], or None when there is no such item (a compare row's interval per job)."""
    try:
        return values[int(position)]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
