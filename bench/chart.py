"""Grouped bar charts as PNG via gnuplot (Debian's gnuplot-nox): one panel per metric, side by
side, a group per mode on the x axis, one bar per proxy with its value printed on top."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Same colour for the same proxy in every chart.
COLOURS = {"portico": "#1f77b4", "nginx": "#2ca02c", "haproxy": "#d62728"}
EXTRA_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


@dataclass
class Panel:
    title: str
    groups: list[str]  # x-axis categories (modes)
    series: dict[str, list[float]]  # bar series name -> one value per group (NaN: no bar)
    fmt: str = ""  # printf format of the labels on the bars; "" picks one from the values


@dataclass
class Timeline:
    """A line panel: (seconds, value) points, with numbered vertical markers (events)."""
    title: str
    points: list[tuple[float, float]]
    markers: list[tuple[float, str]]


def _label_fmt(values: list[float]) -> str:
    finite = [abs(v) for v in values if v == v]
    top = max(finite) if finite else 0
    if top >= 10000:
        return "%.1fk"  # the label shows value / 1000
    if top >= 100:
        return "%.0f"
    if top >= 10:
        return "%.1f"
    if top >= 1:
        return "%.2f"
    return "%.3f"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bar_chart(png: Path, title: str, panels: list[Panel], width_per_panel: int = 520,
              height: int = 430, extra: Timeline | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="portico-chart-") as tmp:
        lines = [f"set terminal pngcairo size {width_per_panel * (len(panels) + (1 if extra else 0))},"
                 f"{height} "
                 "font 'DejaVu Sans,10' noenhanced",
                 f"set output {_quote(str(png))}",
                 f"set multiplot layout 1,{len(panels) + (1 if extra else 0)} title {_quote(title)} font ',12'",
                 "set style data histograms",
                 "set style histogram clustered gap 1",
                 "set style fill solid 0.85 border -1",
                 "set boxwidth 0.9",
                 "set grid ytics lc rgb '#dddddd'",
                 "set key below horizontal",
                 "set yrange [0:*]",
                 "set offsets 0,0,graph 0.12,0",
                 "set xtics nomirror",
                 "set ytics nomirror"]
        for i, panel in enumerate(panels):
            # A proxy without a single value (it failed) gets no bars: gnuplot rejects an
            # all-NaN column.
            names = [n for n, vals in panel.series.items() if any(v == v for v in vals)]
            if not names:
                lines += [f"set title {_quote(panel.title + ' (no data)')}",
                          "plot [0:1] NaN notitle"]
                continue
            data = Path(tmp) / f"panel{i}.dat"
            rows = []
            for g, group in enumerate(panel.groups):
                vals = [panel.series[n][g] for n in names]
                rows.append(_quote(group) + " " + " ".join(
                    "NaN" if v != v else f"{v:.6g}" for v in vals))
            data.write_text("\n".join(rows) + "\n")
            fmt = panel.fmt or _label_fmt([v for n in names for v in panel.series[n]])
            n = len(names)
            # Clustered histogram geometry: group g sits at x = g, its n bars are 1/(n + gap)
            # wide, centred on it.
            width = 1.0 / (n + 1)
            plots = []
            for j, name in enumerate(names):
                colour = COLOURS.get(name, EXTRA_COLOURS[j % len(EXTRA_COLOURS)])
                using = f"{j + 2}:xtic(1)" if j == 0 else f"{j + 2}"
                plots.append(f"{_quote(str(data))} using {using} title {_quote(name)} "
                             f"lc rgb {_quote(colour)}")
            for j, name in enumerate(names):
                off = (j - (n - 1) / 2) * width
                value = f"${j + 2}/1000.0" if fmt.endswith("k") else f"${j + 2}"
                plots.append(f"{_quote(str(data))} using ($0{off:+.4f}):{j + 2}:"
                             f"(sprintf({_quote(fmt)}, {value})) with labels offset 0,0.7 "
                             "font ',9' notitle")
            lines += [f"set title {_quote(panel.title)}", "plot " + ", \\\n  ".join(plots)]
        if extra:
            data = Path(tmp) / "timeline.dat"
            data.write_text("".join(f"{t:.3f} {v:.6g}\n" for t, v in extra.points))
            lines += ["set style data lines", "set xtics auto", "set offsets 0,0,graph 0.1,0",
                      "set xlabel 'seconds'", f"set title {_quote(extra.title)}"]
            for i, (t, label) in enumerate(extra.markers):
                lines += [f"set arrow {i + 1} from {t:.3f}, graph 0 to {t:.3f}, graph 1 nohead "
                          "dt 2 lc rgb '#888888'",
                          f"set label {i + 1} {_quote(label)} at {t:.3f}, graph 0.97 center "
                          "font ',9'"]
            lines.append(f"plot {_quote(str(data))} using 1:2 with lines lw 2 "
                         f"lc rgb {_quote(COLOURS['portico'])} notitle")
        lines.append("unset multiplot")
        script = Path(tmp) / "chart.gp"
        script.write_text("\n".join(lines) + "\n")
        r = subprocess.run(["gnuplot", str(script)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"gnuplot failed: {r.stderr[-2000:]}")
