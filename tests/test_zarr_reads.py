"""Blocks of zarr arrays on local disk, read by ``_zarr_reads``: zarr's values
to the bit, whatever the format, codec, dtype, chunking and selection; zarr
reads whatever the module does not know."""

import itertools
import os
import tracemalloc

import dask
import dask.array as da
import numcodecs
import numpy as np
import pytest
import zarr
from dask._task_spec import _execute_subgraph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from incremental import Incremental, _dask_compat, _zarr_reads
from incremental._blocks import make_blocks
from incremental._zarr_reads import CONFIG_KEY, chunk_files, read_block

COMPRESSORS = {
    "raw": (None, None),
    "zstd": (zarr.codecs.ZstdCodec(), numcodecs.Zstd()),
    "zstd-checksum": (
        zarr.codecs.ZstdCodec(checksum=True),
        numcodecs.Zstd(checksum=True),
    ),
    "blosc": (zarr.codecs.BloscCodec(), numcodecs.Blosc()),
    "gzip": (zarr.codecs.GzipCodec(), numcodecs.GZip()),
}
DTYPES = ["f8", "f4", "i8", "i2", "u1", "c8", "M8[s]"]


class NoZarr:
    """An array argument that fails if the block is left to zarr."""

    def __getitem__(self, selection):
        raise AssertionError("read by zarr, not from the chunk files")


def all_stored(files):
    """Whether every chunk has a file (zarr writes none for a chunk that is
    all fill value)."""
    grid = [range(-(-n // c)) for n, c in zip(files.shape, files.chunks)]
    return all(
        os.path.exists(os.path.join(files.folder, files.chunk_name(at)))
        for at in itertools.product(*grid)
    )


def make_array(path, shape, chunks, dtype, codec="zstd", zarr_format=3, **kwargs):
    v3, v2 = COMPRESSORS[codec]
    return zarr.create_array(
        str(path),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        zarr_format=zarr_format,
        compressors=(v3 if zarr_format == 3 else v2) or None,
        **kwargs,
    )


def values(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * 1000).astype(dtype)


@st.composite
def layouts(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, size + 2)) for size in shape)
    selection = []
    for size in shape:
        start = draw(st.integers(0, size - 1))
        selection.append(slice(start, draw(st.integers(start + 1, size))))
    return shape, chunks, tuple(selection)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    layout=layouts(),
    dtype=st.sampled_from(DTYPES),
    codec=st.sampled_from(sorted(COMPRESSORS)),
    zarr_format=st.sampled_from([2, 3]),
    written=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_blocks_are_zarrs_to_the_bit(
    tmp_path_factory, layout, dtype, codec, zarr_format, written, seed
):
    shape, chunks, selection = layout
    path = tmp_path_factory.mktemp("z") / "a.zarr"
    z = make_array(path, shape, chunks, dtype, codec, zarr_format, fill_value=7)
    data = values(shape, dtype, seed)
    # Some chunks written, the others missing (zarr fills them with 7).
    rows = int(round(written * shape[0]))
    if rows:
        z[:rows] = data[:rows]
    files = chunk_files(z)
    assert files is not None
    expected = z[selection]
    got = read_block(z, selection, files)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    assert got.flags.owndata and got.flags.writeable
    if all_stored(files):  # every chunk on disk: zarr is not asked
        assert read_block(NoZarr(), selection, files).tobytes() == expected.tobytes()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_from_zarr_blocks_are_read_from_the_files(tmp_path, zarr_format):
    data = values((50, 3), "f8")
    z = make_array(tmp_path / "X.zarr", data.shape, (20, 3), "f8", "zstd", zarr_format)
    z[:] = data
    labels = make_array(tmp_path / "y.zarr", (50,), (20,), "i8", "raw", zarr_format)
    labels[:] = np.arange(50)
    # Opened from a path: an fsspec store on a folder.
    X, y = (da.from_zarr(str(tmp_path / n)) for n in ("X.zarr", "y.zarr"))
    blocks = make_blocks(X, y)
    readers = {getattr(task, "func", None) for task in blocks.graph.values()}
    assert readers - {None} == {read_block}
    computed = blocks.compute(range(blocks.n_blocks))
    np.testing.assert_array_equal(np.vstack([b["X"] for b in computed]), data)
    np.testing.assert_array_equal(
        np.concatenate([b["y"] for b in computed]), np.arange(50)
    )


def test_a_transform_of_the_blocks_reads_the_files_too(tmp_path):
    """A pipeline's next stage fits on a map_blocks over the read, which
    dask fuses into one task: the read inside it is ours as well."""
    data = values((60, 2), "f8")
    z = make_array(tmp_path / "X.zarr", data.shape, (25, 2), "f8")
    z[:] = data
    X = da.from_zarr(str(tmp_path / "X.zarr"))
    blocks = make_blocks(X.map_blocks(np.negative))
    inner = [
        task.args[0]
        for task in blocks.graph.values()
        if getattr(task, "func", None) is _execute_subgraph
    ]
    assert inner and all(
        read_block in {getattr(t, "func", None) for t in graph.values()}
        for graph in inner
    )
    computed = blocks.compute(range(blocks.n_blocks))
    np.testing.assert_array_equal(np.vstack([b["X"] for b in computed]), -data)


def test_turned_off_and_on_dask_internals_moved_zarr_reads(tmp_path, monkeypatch):
    z = make_array(tmp_path / "X.zarr", (30, 2), (10, 2), "f8")
    z[:] = values((30, 2), "f8")
    X = da.from_zarr(str(tmp_path / "X.zarr"))

    def readers():
        graph = make_blocks(X).graph
        return {getattr(task, "func", None) for task in graph.values()} - {None}

    assert read_block in readers()
    with dask.config.set({CONFIG_KEY: False}):
        assert read_block not in readers()
    monkeypatch.setattr(_dask_compat, "FORCE_FALLBACK", True)
    assert read_block not in readers()


def test_fits_are_the_same_as_with_zarrs_reads(tmp_path):
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(400, 4))
    yn = (Xn[:, 0] + rng.normal(size=400) > 0).astype(int)
    da.from_array(Xn, chunks=50).to_zarr(str(tmp_path / "X.zarr"))
    da.from_array(yn, chunks=50).to_zarr(str(tmp_path / "y.zarr"))

    def fit():
        pipe = make_pipeline(
            Incremental(StandardScaler(), shuffle_blocks=False),
            Incremental(SGDClassifier(random_state=0), shuffle_blocks=False),
        )
        X, y = (da.from_zarr(str(tmp_path / n)) for n in ("X.zarr", "y.zarr"))
        return pipe.fit(X, y)

    ours = fit()
    with dask.config.set({CONFIG_KEY: False}):
        zarrs = fit()
    np.testing.assert_array_equal(ours[-1].coef_, zarrs[-1].coef_)
    np.testing.assert_array_equal(ours[0].mean_, zarrs[0].mean_)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: make_array(p, (8, 4), (4, 4), "f8", shards=(8, 4)),
        lambda p: make_array(p, (8,), (4,), ">f8", "zstd", 2),
        lambda p: make_array(p, (8,), (4,), "<U3", "zstd", 3),
        lambda p: zarr.create_array(
            str(p),
            shape=(8,),
            chunks=(4,),
            dtype="f8",
            zarr_format=2,
            filters=[numcodecs.Delta(dtype="f8")],
            compressors=None,
        ),
        lambda p: zarr.create_array(
            str(p),
            shape=(8, 2),
            chunks=(4, 2),
            dtype="f8",
            filters=[zarr.codecs.TransposeCodec(order=(1, 0))],
        ),
        lambda p: zarr.create_array(
            zarr.storage.MemoryStore(), shape=(8,), chunks=(4,), dtype="f8"
        ),
        lambda p: np.zeros(8),
    ],
    ids=[
        "sharded",
        "big-endian",
        "strings",
        "filters",
        "transposed",
        "memory",
        "numpy",
    ],
)
@pytest.mark.filterwarnings("ignore:The data type")
def test_what_the_module_does_not_know_is_left_to_zarr(tmp_path, make):
    assert chunk_files(make(tmp_path / "a.zarr")) is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "too long"])
def test_a_damaged_chunk_is_zarrs_to_report(tmp_path, damage):
    for codec in ("raw", "zstd", "zstd-checksum"):
        z = make_array(tmp_path / f"{codec}.zarr", (20,), (10,), "f8", codec)
        z[:] = np.arange(20.0)
        chunk = os.path.join(chunk_files(z).folder, "c", "1")
        content = open(chunk, "rb").read()
        changed = {
            "truncated": content[: len(content) // 2],
            "garbage": b"\x00" * len(content),
            "too long": content + b"\x01" * 8,
        }[damage]
        with open(chunk, "wb") as file:
            file.write(changed)
        files, selection = chunk_files(z), (slice(0, 20),)
        try:
            expected = z[selection]
        except Exception as error:  # zarr refuses it: so do we, with its error
            with pytest.raises(type(error)):
                read_block(z, selection, files)
        else:
            assert read_block(z, selection, files).tobytes() == expected.tobytes()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zstd_chunks_are_decompressed_as_they_are_read(tmp_path, zarr_format):
    # Incompressible values: the stored chunk is about as large as the block.
    z = make_array(
        tmp_path / "a.zarr", (500_000, 2), (250_000, 2), "f8", "zstd", zarr_format
    )
    z[:] = values(z.shape, "f8")
    files, selection = chunk_files(z), (slice(0, 500_000), slice(0, 2))
    tracemalloc.start()
    try:
        got = read_block(NoZarr(), selection, files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.tobytes() == z[:].tobytes()
    # The block, and no buffer of a whole stored chunk (4 MB) besides.
    assert peak < got.nbytes + 2 * _zarr_reads.STREAM_READ_BYTES


def test_zstd_is_read_the_same_without_zstandard(tmp_path, monkeypatch):
    z = make_array(tmp_path / "a.zarr", (50, 3), (20, 2), "f8", "zstd-checksum")
    z[:] = values(z.shape, "f8")
    files = chunk_files(z)
    streamed = []
    monkeypatch.setattr(
        _zarr_reads, "_stream_zstd", lambda *a: streamed.append(1) or False
    )
    read_block(z, (slice(0, 50), slice(0, 3)), files)
    assert streamed  # zstandard is installed with the zarr extra
    monkeypatch.setattr(_zarr_reads, "_zstandard", lambda: None)
    streamed.clear()
    for selection in [(slice(0, 50), slice(0, 3)), (slice(5, 33), slice(1, 3))]:
        got = read_block(NoZarr(), selection, files)
        assert got.tobytes() == z[selection].tobytes()
    assert not streamed


def test_the_reads_travel_to_a_cluster(client, tmp_path):
    """The rerouted tasks pickle (a cluster of processes sends them), and a
    fit on a cluster reads the files on the workers, as the local fit does."""
    import cloudpickle

    rng = np.random.default_rng(5)
    Xn = rng.normal(size=(300, 3))
    yn = (Xn[:, 1] > 0).astype(int)
    da.from_array(Xn, chunks=60).to_zarr(str(tmp_path / "X.zarr"))
    X = da.from_zarr(str(tmp_path / "X.zarr"))
    blocks = make_blocks(X)
    graph = cloudpickle.loads(cloudpickle.dumps(blocks.graph_for(blocks.keys([2]))))
    np.testing.assert_array_equal(dask.get(graph, blocks.keys([2]))[0], Xn[120:180])

    def fit():
        model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
        return model.fit(X, da.from_array(yn, chunks=60), classes=[0, 1])

    on_cluster = fit()
    with dask.config.set(scheduler="threads"):
        local = fit()
    assert on_cluster.history_[0]["runner"] == "cluster"
    np.testing.assert_array_equal(on_cluster.coef_, local.coef_)


def _funcs(array):
    return {
        getattr(task, "func", None) for task in dict(array.__dask_graph__()).values()
    }


def test_post_fit_methods_read_the_files_too(tmp_path):
    rng = np.random.default_rng(7)
    Xn = rng.normal(size=(240, 3))
    yn = (Xn[:, 2] > 0).astype(int)
    da.from_array(Xn, chunks=80).to_zarr(str(tmp_path / "X.zarr"))
    X = da.from_zarr(str(tmp_path / "X.zarr"))
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.fit(X, da.from_array(yn, chunks=80), classes=[0, 1])
    predicted = model.predict(X)
    assert read_block in _funcs(predicted)
    with dask.config.set({CONFIG_KEY: False}):
        by_zarr = model.predict(X)
    assert read_block not in _funcs(by_zarr)
    np.testing.assert_array_equal(predicted.compute(), by_zarr.compute())
    np.testing.assert_array_equal(predicted.compute(), model.estimator_.predict(Xn))


@pytest.mark.parametrize(
    "view",
    [
        lambda X: X[50:200],
        lambda X: X[130:],
        lambda X: X.rechunk(60),
        lambda X: X[:, [2, 0, 1]],
    ],
    ids=["slice", "tail", "rechunk", "columns"],
)
def test_post_fit_methods_read_views_of_zarr_from_the_files(tmp_path, view):
    """A slice or a rechunk of ``da.from_zarr`` passed to predict reads the
    chunk files too, with zarr's values."""
    rng = np.random.default_rng(9)
    Xn = rng.normal(size=(240, 3))
    da.from_array(Xn, chunks=80).to_zarr(str(tmp_path / "X.zarr"))
    X = da.from_zarr(str(tmp_path / "X.zarr"))
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.fit(da.from_array(Xn, chunks=80), da.from_array(Xn[:, 2] > 0, chunks=80))
    seen = view(da.from_array(Xn, chunks=80)).compute()
    for method in ("predict", "decision_function"):
        ours = getattr(model, method)(view(X))
        assert read_block in _funcs(ours)
        with dask.config.set({CONFIG_KEY: False}):
            by_zarr = getattr(model, method)(view(X))
        assert read_block not in _funcs(by_zarr)
        np.testing.assert_array_equal(ours.compute(), by_zarr.compute())
        expected = getattr(model.estimator_, method)(seen)
        np.testing.assert_array_equal(ours.compute(), expected)


def test_arrays_without_zarr_reads_are_left_as_they_are():
    from incremental._zarr_reads import faster_array_reads

    in_memory = da.from_array(np.ones((10, 2)), chunks=5)
    for X in (in_memory, in_memory[2:8], da.ones((10, 2), chunks=5) + 1):
        assert faster_array_reads(X) is X


def test_a_pipelines_next_stage_finds_the_kept_blocks(tmp_path, monkeypatch):
    """The scaler's transform reads through our reader under X's own keys
    and source layers, so blocks kept by the scaler's fit serve the SGD's."""
    import incremental

    rng = np.random.default_rng(8)
    Xn = rng.normal(size=(300, 3))
    yn = (Xn[:, 0] > 0).astype(int)
    da.from_array(Xn, chunks=60).to_zarr(str(tmp_path / "X.zarr"))
    X = da.from_zarr(str(tmp_path / "X.zarr"))
    incremental.clear_cache()
    pipe = make_pipeline(
        Incremental(StandardScaler(), shuffle_blocks=False, cache="1GB"),
        Incremental(SGDClassifier(random_state=0), shuffle_blocks=False),
    )
    from incremental import _zarr_reads

    chunks_read = []
    read_chunk = _zarr_reads._read_chunk

    def counted(files, region, at, out):
        chunks_read.append(at)
        return read_chunk(files, region, at, out)

    monkeypatch.setattr(_zarr_reads, "_read_chunk", counted)
    pipe.fit(X, da.from_array(yn, chunks=60))
    assert len(chunks_read) == X.numblocks[0]  # by the scaler's fit alone
    incremental.clear_cache()
