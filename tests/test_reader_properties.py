"""Property-based tests of every reader of user or workdir files: whatever bytes a list, a feature
file, a store record, a folds file, a submission or a zip holds, the reader either returns something
valid or raises the project's error in one line naming the file; nothing else escapes.

Each test draws damaged variants of a valid file (truncated, bytes changed, fields replaced by odd
values, quotes, control characters, odd shapes and dtypes) and runs in a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mer_ensemble.errors import DataError, MerError, StoreError, SubmissionError
from mer_ensemble.tasks import resolve_task

#: examples per property: a few seconds each in the suite; MER_PROPERTY_EXAMPLES=2000 searches longer
EXAMPLES = int(os.environ.get("MER_PROPERTY_EXAMPLES", "60"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: pieces CSV-like lists are made of: field values, separators, quotes, odd characters
TOKENS = ["name", "split", "emotion", "train", "test", "dev", "unlabeled", "anger", "joy", "u1", "u2", "u3",
          "a.mp4", "../x", "/abs", "", " ", ",", ",", '"', "\n", "\n", "\r\n", "\t", "\x00", "\ufeff", "é", "1e300"]
csvish = st.one_of(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join), st.text(max_size=80))


def _one_line(exc: BaseException, path: Path | str) -> None:
    text = str(exc)
    assert "\n" not in text and str(Path(path).name) in text, text


def _mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    """``data`` cut at ``cut`` (when shorter) with bytes replaced at positions (modulo the length)."""
    out = bytearray(data[:cut] if cut < len(data) else data)
    for pos, value in flips:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


mutations = st.tuples(st.integers(0, 4000), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                     max_size=4))


# --- lists --------------------------------------------------------------------------------------------


@FAST
@given(text=csvish, raw=st.one_of(st.none(), st.binary(max_size=60)))
def test_a_generic_label_list_reads_or_is_one_line(text: str, raw: bytes | None):
    from mer_ensemble.data.layouts import read_layout

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = root / "labels.csv"
        header = "name,split,emotion\nk1,train,joy\nk2,test,\n"
        path.write_bytes(raw if raw is not None else (header + text).encode("utf-8", "surrogatepass"))
        try:
            table = read_layout("generic", root, targets=["emotion"])
        except DataError as exc:
            assert "\n" not in str(exc)
            return
    names = table["name"].tolist()
    assert len(set(names)) == len(names) and all(names)
    assert not any(set(n) & {"/", "\\", "\n", "\r", "\x00"} or n in (".", "..") for n in names)
    assert set(table["split"]) <= {"train", "dev", "unlabeled", "test"}


@FAST
@given(text=csvish, suffix=st.sampled_from([".csv", ".txt"]))
def test_a_test_name_list_reads_or_is_one_line(text: str, suffix: str):
    from mer_ensemble.data.layouts import read_mer2024

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "label-disdim.csv").write_text("name,discrete\nk1,happy\nk2,sad\n")
        test = root / f"test-names{suffix}"
        test.write_text(("name\n" if suffix == ".csv" else "") + text, encoding="utf-8", errors="surrogatepass")
        try:
            table = read_mer2024(root, targets=["discrete"], test_file=test.name)
        except DataError as exc:
            _one_line(exc, test)
            return
    tests = table.loc[table["split"] == "test", "name"].tolist()
    assert all(tests) and not any(set(n) & {"/", "\\", "\n", "\x00"} for n in tests)


@FAST
@given(lines=st.lists(st.tuples(st.sampled_from(["u1.mp4", "u2", "a b", "../u", "", "u\x01"]),
                                st.sampled_from(["happy", "", "sad extra", "x"]),
                                st.sampled_from(["neutral", "", "agreeing"])), max_size=6))
def test_a_meiju_text_list_reads_or_is_one_line(lines: list[tuple[str, str, str]]):
    from mer_ensemble.data.layouts import read_meiju

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        train = root / "Training_files.txt"
        train.write_text("".join(" ".join(parts) + "\n" for parts in lines))
        (root / "Testing_files.txt").write_text("t1.mp4\n")
        try:
            table = read_meiju(root)
        except DataError as exc:
            assert "\n" not in str(exc)
            return
    labelled = table[table["split"] == "train"]
    assert labelled["emotion"].notna().all() and labelled["intent"].notna().all()


# --- feature files --------------------------------------------------------------------------------


arrays = st.tuples(
    st.sampled_from(["float16", "float32", "float64", "int8", "int64", "uint8", "complex64", "bool", "<U3"]),
    st.sampled_from([(4,), (1, 4), (3, 4), (), (0,), (2, 0), (4, 1), (2, 2, 1)]),
    st.sampled_from([0.5, -3.0, np.nan, np.inf, 1e300, 7.0]),
)


@FAST
@given(spec=arrays, mutation=mutations)
def test_read_npy_returns_an_array_or_one_line(spec, mutation):
    from mer_ensemble.io import read_npy

    dtype, shape, value = spec
    buffer = io.BytesIO()
    with np.errstate(all="ignore"):
        np.save(buffer, np.full(shape, value if dtype != "<U3" else "ab").astype(dtype))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.npy"
        path.write_bytes(_mutate(buffer.getvalue(), *mutation))
        for mmap in (False, True):
            try:
                array = read_npy(path, DataError, mmap=mmap)
            except DataError as exc:
                _one_line(exc, path)
            else:
                assert isinstance(array, np.ndarray)
                del array


@FAST
@given(specs=st.lists(arrays, min_size=1, max_size=4), level=st.sampled_from(["-UTT", "-FRA", ""]))
def test_a_feature_folder_loads_finite_float32_or_is_one_line(specs, level: str):
    from mer_ensemble.data.features import load_feature

    names = ["u0", "u1", "u2", "u3"]
    with tempfile.TemporaryDirectory() as folder:
        feature = Path(folder) / f"f{level}"
        feature.mkdir()
        for i, name in enumerate(names):
            dtype, shape, value = specs[i % len(specs)] if i < len(specs) else ("float32", (4,), 1.0)
            with np.errstate(all="ignore"):
                np.save(feature / f"{name}.npy", np.full(shape, value if dtype != "<U3" else "ab").astype(dtype))
        try:
            block, _ = load_feature(feature, names, feature=feature.name, modality="audio",
                                    cache_dir=Path(folder) / "cache")
        except DataError as exc:
            assert "\n" not in str(exc) and feature.name in str(exc)
            return
        values = np.asarray(block.values)
        assert values.dtype == np.float32 and values.ndim == 2 and np.isfinite(values).all()
        assert block.n_rows == len(names)
        for i, name in enumerate(names):  # each row holds exactly its file's numbers
            raw = np.load(feature / f"{name}.npy").astype(np.float32)
            if block.level == "utt":
                assert np.array_equal(values[i], raw.reshape(-1))
            else:
                frames = values[block.offsets[i]: block.offsets[i + 1]]
                assert np.array_equal(frames, raw.reshape(-1, values.shape[1]))
        again, _ = load_feature(feature, names, feature=feature.name, modality="audio",
                                cache_dir=Path(folder) / "cache")
        assert np.array_equal(np.asarray(again.values), values)


# --- store records --------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


def _record():
    from mer_ensemble.store import RunRecord

    rng = np.random.default_rng(0)
    return RunRecord(manifest={"key": "lin", "targets": ["emotion"], "classes": {"emotion": ["a", "b"]}},
                     oof={"emotion": rng.random((4, 2))}, test={"emotion": rng.random((2, 2))},
                     pool={"emotion": rng.random((3, 2))}, pool_by_fold={"emotion": rng.random((2, 3, 2))},
                     rows=np.arange(4), fold=np.array([0, 1, 0, 1]), test_rows=np.array([4, 5]),
                     pool_rows=np.array([6, 7, 8]))


@FAST
@given(key=st.sampled_from(["key", "targets", "classes", "seeds", "cv", "raw_inputs", "folds_hash"]), value=json_values,
       json_cut=st.integers(0, 400), npz_mutation=mutations, damage=st.sampled_from(["json", "value", "npz"]))
def test_a_store_record_loads_or_is_one_line(key: str, value, json_cut: int, npz_mutation, damage: str):
    from mer_ensemble.store import load_run, save_run

    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        save_run(workdir, _record())
        meta, npz = workdir / "store" / "lin.json", workdir / "store" / "lin.npz"
        if damage == "json":
            meta.write_bytes(meta.read_bytes()[:json_cut])
        elif damage == "value":
            manifest = json.loads(meta.read_text())
            manifest[key] = value
            meta.write_text(json.dumps(manifest))
        else:
            npz.write_bytes(_mutate(npz.read_bytes(), *npz_mutation))
        try:
            record = load_run(workdir, "lin")
        except StoreError as exc:
            assert "\n" not in str(exc) and "run lin" in str(exc)
            return
    for target in record.targets:
        assert record.oof[target].shape == (len(record.rows), len(record.classes(target)))
        assert np.isfinite(record.oof[target]).all() and np.isfinite(record.test[target]).all()


# --- folds ----------------------------------------------------------------------------------------

LABELLED = [f"n{i}" for i in range(6)]


def _dataset():
    names = np.array([*LABELLED, "t0", "t1"], dtype=object)
    return SimpleNamespace(names=names, labelled_rows=np.arange(len(LABELLED)), n_rows=len(names))


fold_lines = st.lists(
    st.tuples(st.sampled_from([*LABELLED, "t0", "x", "", '"n1']), st.sampled_from(["0", "1", "2", "-1", "a", "",
                                                                                   "1.5", " 1", "99"])),
    max_size=9,
)


@FAST
@given(lines=fold_lines, header=st.sampled_from(["name,fold", "fold,name", "name", ""]), cut=st.integers(0, 200))
def test_a_folds_file_reads_valid_folds_or_is_one_line(lines, header: str, cut: int):
    from mer_ensemble.data.folds import read_folds

    text = header + "\n" + "".join(f"{n},{k}\n" for n, k in lines)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "folds.csv"
        path.write_text(text[: max(cut, len(header))])
        try:
            folds = read_folds(path, _dataset())
        except DataError as exc:
            _one_line(exc, path)
            return
    assert sorted(folds.rows.tolist()) == list(range(len(LABELLED)))
    assert set(folds.fold.tolist()) == set(range(folds.n_folds))


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None)
@given(meta=json_values)
def test_folds_json_with_anything_but_its_hash_is_refused(meta):
    from mer_ensemble.data.folds import _read_meta

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "folds.json"
        path.write_text(json.dumps(meta))
        try:
            out = _read_meta(path, Path(folder) / "folds.csv")
        except DataError as exc:
            _one_line(exc, path)
            return
    assert isinstance(out, dict) and isinstance(out["hash"], str)


# --- submissions and zips -------------------------------------------------------------------------

GENERIC = resolve_task("generic", targets=["emotion"], classes={"emotion": ["anger", "joy"]})
MEIJU = resolve_task("meiju2025-track1")
TEST_NAMES = ["u1", "u2", "u3"]


@FAST
@given(text=csvish, raw=st.one_of(st.none(), st.binary(max_size=60)))
def test_a_submission_validates_or_is_one_line(text: str, raw: bytes | None):
    from mer_ensemble.submission import validate_submission

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sub.csv"
        path.write_bytes(raw if raw is not None else ("name,emotion\n" + text).encode("utf-8", "surrogatepass"))
        try:
            frame = validate_submission(path, GENERIC, TEST_NAMES)
        except SubmissionError as exc:
            _one_line(exc, path)
            return
    assert sorted(frame["name"]) == TEST_NAMES and set(frame["emotion"]) <= {"anger", "joy"}


GOOD_MEIJU = "filename,emo_pred,int_pred\n" + "".join(f"{n},happy,neutral\n" for n in TEST_NAMES)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@FAST
@given(members=st.lists(st.tuples(st.sampled_from(["submission.csv", "../submission.csv", "a/submission.csv",
                                                   "other.csv", "submission.csv/", "notes.txt"]),
                                  st.sampled_from([GOOD_MEIJU, "x", "", GOOD_MEIJU[:30]])), max_size=3),
       cut=st.integers(0, 2000), suffix=st.sampled_from([".zip", ".csv"]))
def test_a_submission_zip_validates_or_is_one_line(members, cut: int, suffix: str):
    from mer_ensemble.submission import validate_submission

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload in members:
            archive.writestr(name, payload)
    data = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"sub{suffix}"
        path.write_bytes(data[:cut] if cut < len(data) else data)
        try:
            frame = validate_submission(path, MEIJU, TEST_NAMES)
        except SubmissionError as exc:
            _one_line(exc, path)
            return
    assert members == [("submission.csv", GOOD_MEIJU)] and cut >= len(data)
    assert sorted(frame["filename"]) == TEST_NAMES


def test_the_reader_errors_are_the_projects():
    """The properties above catch only the project's errors; anything else would fail them."""
    assert all(issubclass(e, MerError) for e in (DataError, StoreError, SubmissionError))
    with pytest.raises(SubmissionError):
        from mer_ensemble.submission import validate_submission

        validate_submission(Path("/nonexistent/sub.csv"), GENERIC, TEST_NAMES)
