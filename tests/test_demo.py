"""Tests of ``python -m incremental.demo`` through its ``main`` function."""

from __future__ import annotations

import re
import shutil
from collections import namedtuple

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import zarr

from incremental import demo

TINY = ["--rows", "20000", "--chunk-rows", "5000"]


def _figure(text: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(\S+)", text, flags=re.MULTILINE)
    assert match, f"{label!r} missing from:\n{text}"
    return match.group(1)


def test_demo_prints_figures_and_writes_picture_and_predictions(tmp_path, capsys):
    assert demo.main([*TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert "generated 20,000 x 20" in out
    assert float(_figure(out, "fit time")) >= 0
    assert float(_figure(out, "predict time")) >= 0
    assert 0.7 < float(_figure(out, "accuracy")) <= 1.0
    assert float(_figure(out, "peak memory").replace(",", "")) > 0
    assert _figure(out, "profile") == str(tmp_path / "profile.html")
    assert _figure(out, "picture") == str(tmp_path / "profile.png")

    html = (tmp_path / "profile.html").read_text()
    assert "<script src=" not in html and "cdn.bokeh.org" not in html
    assert "Bokeh.embed" in html  # BokehJS is inline: it opens offline
    for phase in ["StandardScaler pass", "SGDClassifier pass", "predict"]:
        assert phase in html
    png = tmp_path / "profile.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(str(png)).std() > 0.05  # not blank

    predictions = zarr.open_array(tmp_path / "predictions.zarr", mode="r")[:]
    assert predictions.shape == (20_000,)
    assert set(np.unique(predictions)) <= {0, 1}


def test_parquet_demo_fits_dataframes_and_predicts_to_parquet(tmp_path, capsys):
    assert demo.main([*TINY, "--format", "parquet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert (
        "generated 20,000 x 20 float64 (0.00 GB, 4 blocks of 5,000 rows, parquet)"
        in out
    )
    assert "parquet to parquet" in out
    assert 0.7 < float(_figure(out, "accuracy")) <= 1.0
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(list((tmp_path / "predictions.parquet").glob("*.parquet"))) == 4
    np.testing.assert_array_equal(predictions.index, np.arange(20_000))
    assert set(np.unique(predictions["prediction"])) <= {0, 1}

    assert demo.main([*TINY, "--format", "parquet", "--out", str(tmp_path)]) == 0
    assert "reused 20,000 x 20" in capsys.readouterr().out


def test_parquet_and_zarr_hold_the_same_numbers(tmp_path):
    demo.write_dataset(tmp_path, 3_000, chunk_rows=700, seed=2)
    demo.write_dataset(tmp_path, 3_000, chunk_rows=700, seed=2, file_format="parquet")
    X, y = demo.load_dataset(tmp_path)
    frame = demo.load_frame(tmp_path)
    assert frame.npartitions == X.numblocks[0] == 5
    assert list(frame.columns) == [*demo.feature_names(), "y"]
    computed = frame.compute()
    np.testing.assert_array_equal(computed[demo.feature_names()], X.compute())
    np.testing.assert_array_equal(computed["y"], y.compute())
    np.testing.assert_array_equal(computed.index, np.arange(3_000))


def test_unknown_format_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.main([*TINY, "--format", "csv", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--format" in capsys.readouterr().err.splitlines()[-1]


def test_demo_reuses_matching_data(tmp_path, capsys):
    demo.write_dataset(tmp_path, 20_000, chunk_rows=5_000)
    assert demo.main([*TINY, "--out", str(tmp_path)]) == 0
    assert "reused 20,000 x 20" in capsys.readouterr().out


def test_write_dataset_is_deterministic_and_labels_follow_x(tmp_path):
    demo.write_dataset(tmp_path / "a", 3_000, chunk_rows=1_000, seed=3)
    demo.write_dataset(tmp_path / "b", 3_000, chunk_rows=1_000, seed=3)
    (Xa, ya), (Xb, yb) = (
        demo.load_dataset(tmp_path / "a"),
        demo.load_dataset(tmp_path / "b"),
    )
    np.testing.assert_array_equal(Xa.compute(), Xb.compute())
    np.testing.assert_array_equal(ya.compute(), yb.compute())
    assert 0.3 < ya.mean().compute() < 0.7
    # A different seed is a different dataset, and is not mistaken for it.
    assert not demo.dataset_exists(tmp_path / "a", 3_000, chunk_rows=1_000, seed=4)


def test_compressed_dataset_has_the_same_values_stored_with_zstd(tmp_path):
    demo.write_dataset(tmp_path / "raw", 2_000, chunk_rows=1_000)
    demo.write_dataset(tmp_path / "zstd", 2_000, chunk_rows=1_000, compressed=True)
    stored = zarr.open_array(tmp_path / "zstd" / "X.zarr", mode="r")
    assert [type(c).__name__ for c in stored.compressors] == ["ZstdCodec"]
    assert not zarr.open_array(tmp_path / "raw" / "X.zarr", mode="r").compressors
    raw, packed = (
        demo.load_dataset(tmp_path / "raw"),
        demo.load_dataset(tmp_path / "zstd"),
    )
    np.testing.assert_array_equal(raw[0].compute(), packed[0].compute())
    # one is not mistaken for the other
    assert not demo.dataset_exists(
        tmp_path / "raw", 2_000, chunk_rows=1_000, compressed=True
    )
    assert not demo.dataset_exists(tmp_path / "zstd", 2_000, chunk_rows=1_000)


@pytest.mark.parametrize("rows", ["0", "-5", "1", "many", "1.5"])
def test_bad_rows_exit_2_with_a_message(rows, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--rows", rows, "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--rows" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "X.zarr").exists()


def test_unwritable_output_folder_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        demo.main([*TINY, "--out", str(blocker / "data")])
    assert exit_.value.code == 2
    assert "cannot write to output folder" in capsys.readouterr().err.splitlines()[-1]


def test_disk_too_small_exits_2_before_writing(tmp_path, capsys, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 0, 10**6))
    with pytest.raises(SystemExit) as exit_:
        demo.main([*TINY, "--out", str(tmp_path)])
    assert exit_.value.code == 2
    message = capsys.readouterr().err.splitlines()[-1]
    assert "not enough disk space" in message and "3.52 MB" not in message
    assert not (tmp_path / "X.zarr").exists()
