"""The demo's profile picture: what the cores did, phase by phase.

:func:`make_picture` turns dask's ``Profiler`` and ``ResourceProfiler``
results and the phases the demo timed itself into a :class:`Picture`, a plain
description of what to draw; :func:`save_png` (matplotlib) and
:func:`save_html` (bokeh, with BokehJS inline so the page opens without a
network) draw the same picture from it.

dask's own picture gives each thread a row, and a fit computes its blocks in
many scheduler calls whose threads come and go, so a 2-core run showed six
"workers". Here each task goes to the lowest lane free when it starts
(:func:`assign_lanes`): the number of lanes is the most tasks that ran at
once, which the picture puts beside the number of cores.

``partial_fit`` is not a dask task, so no profiler sees it: the "main
thread" row shows the span of each pass (from the demo's own clock), within
which the main thread alternates between fitting (``partial_fit``, or
merging the states of batches fitted apart in the stream's reader threads)
and waiting for the next block. The picture cannot tell those apart, nor
show the reader threads' own ``partial_fit`` calls; the CPU line below shows
how busy the cores were.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dask.utils import key_split

# Colours of the phases (light, behind everything) and of the task kinds.
PHASE_COLOURS = ("#fde0c5", "#d9ecd0", "#dcd7ee", "#cfe3f3", "#f3d3dc")
TASK_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclass(frozen=True)
class Span:
    """Something that ran from ``start`` to ``end`` seconds (from the start)."""

    label: str
    start: float
    end: float
    lane: int = 0


@dataclass
class Picture:
    """What the picture shows; the renderers only draw it.

    ``tasks`` are dask tasks in lanes ``0 .. n_lanes - 1``; ``main`` the
    main thread's spans; ``phases`` the demo's phases; ``resources`` rows of
    ``(seconds, cpu percent, memory MB)``.
    """

    tasks: list[Span]
    n_lanes: int
    main: list[Span]
    phases: list[Span]
    resources: list[tuple[float, float, float]]
    n_cores: int
    title: str
    colours: dict[str, str] = field(default_factory=dict)

    @property
    def end(self) -> float:
        ends = [s.end for s in [*self.tasks, *self.main, *self.phases]]
        ends += [r[0] for r in self.resources]
        return max(ends, default=1.0)

    def row_names(self) -> list[str]:
        """Row names, top to bottom: the phases' names, the main thread, then
        the task lanes."""
        lanes = [f"lane {i + 1}" for i in range(self.n_lanes)]
        return ["phase", "main thread", *lanes]

    def wide_enough(self, spans: Sequence[Span]) -> list[Span]:
        """The spans wide enough for their label to fit on them."""
        return [s for s in spans if s.end - s.start > 0.007 * len(s.label) * self.end]

    def subtitle(self) -> str:
        return (
            f"dask tasks packed into {self.n_lanes} lanes (the most that ran at "
            f"once; this machine has {self.n_cores} cores); the main thread "
            "fits each pass between waits for the next block"
        )


def assign_lanes(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """A lane for each ``(start, end)``: the lowest lane free at its start.

    Examples
    --------
    >>> assign_lanes([(0, 2), (1, 3), (2, 4), (2.5, 3)])
    [0, 1, 0, 2]
    """
    order = sorted(range(len(intervals)), key=lambda i: intervals[i])
    lanes = [0] * len(intervals)
    busy: list[tuple[float, int]] = []  # (end, lane) of running intervals
    free: list[int] = []
    n_lanes = 0
    for i in order:
        start, end = intervals[i]
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lanes[i] = heapq.heappop(free)
        else:
            lanes[i], n_lanes = n_lanes, n_lanes + 1
        heapq.heappush(busy, (end, lanes[i]))
    return lanes


def make_picture(
    task_results: Sequence[Any],
    resource_results: Sequence[Any],
    phases: Sequence[tuple[str, float, float]],
    main: Sequence[tuple[str, float, float]],
    *,
    n_cores: int,
    title: str,
) -> Picture:
    """The picture of a run.

    ``task_results`` and ``resource_results`` are ``Profiler.results`` and
    ``ResourceProfiler.results``; ``phases`` and ``main`` are ``(label,
    start, end)`` on the same clock (``time.perf_counter``). Times become
    seconds from the first phase's start.
    """
    origin = min([p[1] for p in phases] + [t.start_time for t in task_results])
    intervals = [(t.start_time - origin, t.end_time - origin) for t in task_results]
    lanes = assign_lanes(intervals)
    tasks = [
        Span(key_split(t.key), start, end, lane)
        for t, (start, end), lane in zip(task_results, intervals, lanes)
    ]
    kinds = sorted({span.label for span in tasks})
    colours = {k: TASK_COLOURS[i % len(TASK_COLOURS)] for i, k in enumerate(kinds)}
    return Picture(
        tasks=tasks,
        n_lanes=max(lanes, default=-1) + 1,
        main=[Span(label, a - origin, b - origin) for label, a, b in main],
        phases=[Span(label, a - origin, b - origin) for label, a, b in phases],
        resources=[
            (r.time - origin, r.cpu, r.mem)
            for r in resource_results
            if r.time >= origin
        ],
        n_cores=n_cores,
        title=title,
        colours=colours,
    )


# -- PNG ---------------------------------------------------------------------------
def save_png(picture: Picture, path: str) -> None:
    """Draw ``picture`` with matplotlib into a PNG at ``path`` (no display)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.5), layout="constrained")
    lanes_ax, load_ax = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    names = picture.row_names()
    y = {name: len(names) - 1 - i for i, name in enumerate(names)}  # top row highest
    for ax in (lanes_ax, load_ax):
        for i, phase in enumerate(picture.phases):
            colour = PHASE_COLOURS[i % len(PHASE_COLOURS)]
            ax.axvspan(phase.start, phase.end, color=colour, zorder=0)
    for label, colour in picture.colours.items():
        for lane in range(picture.n_lanes):
            bars = [
                (s.start, s.end - s.start)
                for s in picture.tasks
                if s.label == label and s.lane == lane
            ]
            row = y[f"lane {lane + 1}"]
            lanes_ax.broken_barh(bars, (row - 0.4, 0.8), color=colour)
        lanes_ax.plot([], [], color=colour, linewidth=6, label=label)
    lanes_ax.broken_barh(
        [(s.start, s.end - s.start) for s in picture.main],
        (y["main thread"] - 0.4, 0.8),
        color="#555555",
    )
    for row, spans, colour in [
        ("phase", picture.phases, "black"),
        ("main thread", picture.main, "white"),
    ]:
        for span in picture.wide_enough(spans):
            lanes_ax.text(
                (span.start + span.end) / 2,
                y[row],
                span.label,
                ha="center",
                va="center",
                color=colour,
                fontsize=8,
                clip_on=True,
            )
    lanes_ax.set_yticks([y[name] for name in names], names)
    lanes_ax.set_ylim(-0.6, len(names) - 0.4)
    lanes_ax.set_title(f"{picture.title}\n{picture.subtitle()}", fontsize=10)
    fig.legend(
        loc="outside lower center", fontsize=8, ncols=6, title="dask tasks, by name"
    )
    _draw_load(load_ax, picture)
    fig.savefig(path, dpi=100)


def _draw_load(ax: Any, picture: Picture) -> None:
    seconds = [r[0] for r in picture.resources]
    ax.plot(seconds, [r[1] for r in picture.resources], color="#d62728")
    ax.axhline(100 * picture.n_cores, color="#d62728", linestyle=":", linewidth=1)
    ax.set_ylim(0, 100 * picture.n_cores * 1.15)
    ax.set_ylabel(f"CPU % ({picture.n_cores} cores)", color="#d62728")
    ax.set_xlabel("seconds")
    ax.set_xlim(0, picture.end)
    memory = ax.twinx()
    memory.plot(seconds, [r[2] for r in picture.resources], color="#1f77b4")
    memory.set_ylim(0, max([r[2] for r in picture.resources], default=1) * 1.15)
    memory.set_ylabel("memory MB", color="#1f77b4")


# -- HTML ------------------------------------------------------------------------------
def save_html(picture: Picture, path: str) -> None:
    """Draw ``picture`` with bokeh into an HTML page at ``path``, with BokehJS
    inline: it opens without a network connection."""
    from bokeh.io import save
    from bokeh.layouts import column
    from bokeh.models import BoxAnnotation
    from bokeh.resources import INLINE

    lanes = _html_lanes(picture)
    load = _html_load(picture, lanes.x_range)
    for i, phase in enumerate(picture.phases):
        for fig in (lanes, load):
            fig.add_layout(
                BoxAnnotation(
                    left=phase.start,
                    right=phase.end,
                    fill_color=PHASE_COLOURS[i % len(PHASE_COLOURS)],
                    fill_alpha=0.7,
                    level="underlay",
                )
            )
    save(column(lanes, load), filename=path, resources=INLINE, title=picture.title)


def _html_lanes(picture: Picture) -> Any:
    from bokeh.models import ColumnDataSource, Title
    from bokeh.plotting import figure

    names = picture.row_names()
    fig = figure(
        title=picture.title,
        y_range=list(reversed(names)),
        x_range=(0, picture.end),
        width=1200,
        height=200 + 40 * len(names),
        tools="xpan,xwheel_zoom,box_zoom,reset,hover",
        tooltips=[("", "@label"), ("seconds", "@left{0.00} to @right{0.00}")],
    )

    def bars(spans, row, **style):
        source = ColumnDataSource(
            {
                "y": [row(s) for s in spans],
                "left": [s.start for s in spans],
                "right": [s.end for s in spans],
                "label": [s.label for s in spans],
            }
        )
        return fig.hbar(
            y="y", left="left", right="right", height=0.8, source=source, **style
        )

    for label, colour in picture.colours.items():
        spans = [s for s in picture.tasks if s.label == label]
        bars(spans, lambda s: f"lane {s.lane + 1}", color=colour, legend_label=label)
    bars(picture.main, lambda s: "main thread", color="#555555")
    for row, spans, colour in [
        ("phase", picture.phases, "black"),
        ("main thread", picture.main, "white"),
    ]:
        # All labelled: the page zooms, so a narrow phase's label can be read.
        fig.text(
            x=[(s.start + s.end) / 2 for s in spans],
            y=[row] * len(spans),
            text=[s.label for s in spans],
            text_align="center",
            text_baseline="middle",
            text_font_size="9pt",
            text_color=colour,
        )
    fig.add_layout(Title(text=picture.subtitle(), text_font_style="italic"), "above")
    legend = fig.legend[0]
    legend.orientation = "horizontal"
    legend.title = "dask tasks, by name"
    fig.add_layout(legend, "below")
    return fig


def _html_load(picture: Picture, x_range: Any) -> Any:
    from bokeh.models import LinearAxis, Range1d
    from bokeh.plotting import figure

    fig = figure(
        x_range=x_range,
        y_range=(0, 100 * picture.n_cores * 1.15),
        width=1200,
        height=220,
        x_axis_label="seconds",
        y_axis_label=f"CPU % ({picture.n_cores} cores)",
        tools="xpan,xwheel_zoom,reset",
    )
    seconds = [r[0] for r in picture.resources]
    fig.line(seconds, [r[1] for r in picture.resources], color="#d62728")
    top = max([r[2] for r in picture.resources], default=1) * 1.15
    fig.extra_y_ranges = {"memory": Range1d(0, top)}
    fig.add_layout(LinearAxis(y_range_name="memory", axis_label="memory MB"), "right")
    fig.line(
        seconds,
        [r[2] for r in picture.resources],
        color="#1f77b4",
        y_range_name="memory",
    )
    return fig
