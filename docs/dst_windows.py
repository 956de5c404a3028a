"""
Draw the calendar windows of Europe/Berlin on its two daylight-saving days
of 2026 (docs/_static/dst_windows.svg), from the same
:class:`~pyrf_blocks.windows.CalendarGrid` the window blocks use.

    python docs/dst_windows.py [OUTPUT]      # default docs/_static/dst_windows.svg
"""

import datetime
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyrf_blocks.windows import CalendarGrid  # noqa: E402

ZONE = "Europe/Berlin"
S = 10 ** 9
H = 3600 * S
WIDTH, LEFT, RIGHT = 960, 70, 20
PANEL = 150
DAYS = ((2026, 3, 29, "spring forward: 02:00 CET becomes 03:00 CEST"),
        (2026, 10, 25, "fall back: 03:00 CEST becomes 02:00 CET"))


def local_midnight(year, month, day):
    return int(datetime.datetime(year, month, day, tzinfo=ZoneInfo(ZONE)).timestamp()) * S


def local_hour(t):
    return datetime.datetime.fromtimestamp(t // S, ZoneInfo(ZONE)).strftime("%H")


def panel(top, year, month, day, title):
    days, hours = CalendarGrid(24 * H, ZONE), CalendarGrid(H, ZONE)
    start = days.floor(local_midnight(year, month, day))
    end = days.shift(start, 1)
    lo, hi = start - H, end + H
    scale = (WIDTH - LEFT - RIGHT) / (hi - lo)

    def x(t):
        return LEFT + (t - lo) * scale

    out = [f'<text x="{LEFT}" y="{top + 16}" class="title">{year}-{month:02d}-{day:02d} '
           f'{ZONE}: {title}</text>']
    # The day window.
    out.append(f'<text x="8" y="{top + 46}" class="label">1d</text>')
    out.append(f'<rect x="{x(start):.1f}" y="{top + 30}" width="{x(end) - x(start):.1f}" '
               f'height="24" class="day"/>')
    out.append(f'<text x="{(x(start) + x(end)) / 2:.1f}" y="{top + 47}" class="inside">'
               f'00:00 to 00:00 local = {(end - start) // H} h</text>')
    # The hour windows.
    out.append(f'<text x="8" y="{top + 82}" class="label">1h</text>')
    bounds = hours.boundaries(start, end)
    for index, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        style = "hour" if index % 2 == 0 else "hour2"
        out.append(f'<rect x="{x(a):.1f}" y="{top + 66}" width="{x(b) - x(a):.1f}" '
                   f'height="24" class="{style}"/>')
        out.append(f'<text x="{(x(a) + x(b)) / 2:.1f}" y="{top + 83}" class="small">'
                   f'{local_hour(a)}</text>')
    # The UTC axis.
    axis = top + 104
    out.append(f'<line x1="{LEFT}" y1="{axis}" x2="{WIDTH - RIGHT}" y2="{axis}" class="axis"/>')
    out.append(f'<text x="8" y="{axis + 26}" class="label">UTC</text>')
    for tick in CalendarGrid(3 * H, "UTC").boundaries(lo, hi):
        label = datetime.datetime.fromtimestamp(tick // S, datetime.timezone.utc)
        out.append(f'<line x1="{x(tick):.1f}" y1="{axis}" x2="{x(tick):.1f}" '
                   f'y2="{axis + 6}" class="axis"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{axis + 20}" class="small">'
                   f'{label:%H:%M}</text>')
    return out


def svg():
    height = PANEL * len(DAYS) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
             "<style>.title{font-size:14px;font-weight:bold}.label{font-size:13px}"
             ".inside{font-size:12px;text-anchor:middle}"
             ".small{font-size:10px;text-anchor:middle}"
             ".day{fill:#cfe2f3;stroke:#3d6b99}.hour{fill:#f4e1c1;stroke:#a67c2e}"
             ".hour2{fill:#e8d0a3;stroke:#a67c2e}.axis{stroke:#444}</style>",
             f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    for number, (year, month, day, title) in enumerate(DAYS):
        parts += panel(10 + number * PANEL, year, month, day, title)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent / "_static" / "dst_windows.svg")
    output.write_text(svg(), encoding="utf-8")


if __name__ == "__main__":
    main()
