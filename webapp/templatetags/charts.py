"""Server-side SVG charts: no script, no CDN, and they render in every browser and in tests."""

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


@register.simple_tag
def line_chart(series: dict, width: int = 640, height: int = 240, title: str = "") -> str:
    """Draw {name: [(x, y), ...]} as lines on shared axes, with a legend and min/max tick labels."""
    curves = {name: points for name, points in series.items() if points}
    if not curves:
        return mark_safe('<p class="muted">No points yet.</p>')
    xs = [x for points in curves.values() for x, _ in points]
    ys = [y for points in curves.values() for _, y in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title or ", ".join(curves))}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" class="tick">{_fmt(y1)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="tick">{_fmt(y0)}</text>',
        f'<text x="{left}" y="{height - 8}" class="tick">step {_fmt(x0)}</text>',
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end" class="tick">{_fmt(x1)}</text>',
    ]
    for i, (name, points) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        if len(points) == 1:
            x, y = points[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        else:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}" '
                f'data-series="{escape(name)}"/>'
            )
        parts.append(
            f'<text x="{left + plot_w - 4}" y="{top + 14 + 14 * i}" text-anchor="end" '
            f'fill="{colour}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


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
def percent_fine(value) -> str:
    """A share that may be tiny (trainable parameters): enough digits to tell 0.002% from 0.02%."""
    return "—" if value in (None, "") else f"{100 * float(value):.3g}%"


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
