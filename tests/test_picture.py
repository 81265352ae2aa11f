"""The demo's profile picture: lanes, phases, and the two files it is saved as."""

from __future__ import annotations

from collections import namedtuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incremental._picture import assign_lanes, make_picture, save_html, save_png

TaskData = namedtuple("TaskData", "key task start_time end_time worker_id")
ResourceData = namedtuple("ResourceData", "time mem cpu")


def _running_at(intervals, lanes, t):
    return [lane for (a, b), lane in zip(intervals, lanes) if a <= t < b]


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(1, 10)).map(
            lambda p: (p[0], p[0] + p[1])
        ),
        max_size=40,
    )
)
def test_lanes_never_overlap_and_are_as_few_as_the_most_running_at_once(intervals):
    lanes = assign_lanes(intervals)
    for t in range(0, 62):
        running = _running_at(intervals, lanes, t)
        assert len(running) == len(set(running))  # no two at once in one lane
    most = max((len(_running_at(intervals, lanes, t)) for t in range(62)), default=0)
    assert len(set(lanes)) == most


@pytest.fixture
def picture():
    # Six threads (ids) but never more than two tasks at once, as on 2 cores.
    tasks = [
        TaskData(
            ("from-zarr-getitem-6f1d1c0d5a5a4a0b9d1e8e7f4a3b2c1d", i),
            None,
            100 + i,
            101.5 + i,
            1000 + i,
        )
        for i in range(6)
    ]
    resources = [ResourceData(100 + t / 4, 500.0, 150.0) for t in range(28)]
    phases = [("StandardScaler pass", 100.0, 103.0), ("predict", 103.0, 107.0)]
    main = [("StandardScaler.partial_fit", 100.0, 103.0)]
    return make_picture(tasks, resources, phases, main, n_cores=2, title="a run")


def test_the_picture_shows_lanes_not_threads(picture):
    assert picture.n_lanes == 2
    assert picture.row_names() == ["phase", "main thread", "lane 1", "lane 2"]
    assert "2 lanes" in picture.subtitle() and "2 cores" in picture.subtitle()
    assert picture.tasks[0].label == "from-zarr-getitem"
    assert picture.phases[0].start == 0.0 and picture.end == 7.0


def test_png_is_a_valid_image(picture, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    path = tmp_path / "profile.png"
    save_png(picture, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(str(path))
    assert image.shape[:2] == (650, 1200)
    assert image.std() > 0.05  # not blank


def test_html_carries_bokehjs_inline(picture, tmp_path):
    pytest.importorskip("bokeh")
    path = tmp_path / "profile.html"
    save_html(picture, str(path))
    text = path.read_text()
    assert "<script src=" not in text and "cdn.bokeh.org" not in text
    assert "Bokeh.embed" in text and len(text) > 500_000  # BokehJS itself
    assert "StandardScaler pass" in text and "lane 2" in text
