"""What a careless or hostile user types cannot destroy stored data, and damaged workdir files or odd
values are one line naming the culprit with a non-zero exit: every case found by an adversarial pass
over the CLI, each reproduced through the command a user would run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import write_config, write_generic

runner = CliRunner()


def invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_line_error(result, *fragments: str, code: int = 1) -> str:
    """The command failed with ``code`` and said so in one ``error:`` line (no traceback) holding
    every fragment; at most two lines on stderr-like output mention the failure."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "╭" not in result.output and "pickle" not in result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to show that a refused command changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return write_config(tmp_path / "exp.yaml", write_generic(tmp_path / "data"))


# --- feature files --------------------------------------------------------------------------------


def test_a_float64_value_beyond_float32_is_named_by_check_and_train_all(experiment: Path, tmp_path: Path):
    path = tmp_path / "data" / "features" / "fa-UTT" / "utt0007.npy"
    np.save(path, np.full(8, 1e300))
    for command in ("check", "train-all"):
        line = one_line_error(invoke(command, "-c", experiment, "--workdir", tmp_path / "wd"), str(path),
                              "beyond float32's range")
        assert "1e+300" in line
    assert not (tmp_path / "wd" / "store").exists()


def test_a_header_promising_more_than_the_file_holds_is_refused_before_allocating(experiment: Path,
                                                                                 tmp_path: Path):
    path = tmp_path / "data" / "features" / "fa-UTT" / "utt0003.npy"
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
    header += b" " * (117 - len(header)) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(64))
    line = one_line_error(invoke("check", "-c", experiment, "--workdir", tmp_path / "wd"), str(path),
                          "(100000000000,)")
    assert "745.1 GiB" in line and "192 bytes" in line


def test_a_complex_feature_is_refused(experiment: Path, tmp_path: Path):
    path = tmp_path / "data" / "features" / "fb-UTT" / "utt0001.npy"
    np.save(path, np.ones(6, np.complex64))
    one_line_error(invoke("check", "-c", experiment, "--workdir", tmp_path / "wd"), str(path), "complex64",
                   "not real")


def test_every_non_finite_file_is_counted_and_the_first_few_named(experiment: Path, tmp_path: Path):
    folder = tmp_path / "data" / "features" / "fa-UTT"
    bad = [f"utt{i:04d}" for i in (2, 5, 9, 11, 40, 70)]
    for name in bad:
        np.save(folder / f"{name}.npy", np.full(8, np.nan, np.float32))
    line = one_line_error(invoke("check", "-c", experiment, "--workdir", tmp_path / "wd"),
                          str(folder / "utt0002.npy"), "NaN/inf", "6 of the 110 files of fa-UTT")
    assert "utt0005.npy" in line and "utt0009.npy" in line and "(+3 more)" in line


# --- config values --------------------------------------------------------------------------------


@pytest.mark.parametrize("seeds, fragment", [
    ("[]", "cv.seeds: an empty list"),
    ("[-1]", "cv.seeds: seed -1 is out of range"),
    ("[4294967296]", "cv.seeds: seed 4294967296 is out of range"),
    ("[5000000]", "seeds are whole numbers from 0 to 4294966"),
    ("[1, 1]", "cv.seeds: seed 1 is listed twice"),
])
def test_bad_seeds_are_refused_by_check_and_train_all(experiment: Path, tmp_path: Path, seeds: str, fragment: str):
    for command in ("check", "train-all"):
        result = invoke(command, "-c", experiment, "--workdir", tmp_path / "wd", "--set", f"cv.seeds={seeds}")
        one_line_error(result, "exp.yaml", fragment)
    model = invoke("check", "-c", experiment, "--workdir", tmp_path / "wd", "--set", f"models.0.seeds={seeds}")
    one_line_error(model, fragment.replace("cv.seeds", "models.0.seeds"))


def test_the_largest_seed_trains(experiment: Path, tmp_path: Path):
    assert invoke("train-all", "-c", experiment, "--workdir", tmp_path / "wd", "--set",
                  "cv.seeds=[4294966]").exit_code == 0


def test_duplicate_run_ids_are_one_short_line(experiment: Path, tmp_path: Path):
    result = invoke("check", "-c", experiment, "--workdir", tmp_path / "wd", "--set",
                    "models=[{name: linear, id: a}, {name: linear, id: a}]")
    line = one_line_error(result, "duplicate run id 'a'")
    assert "data" not in line and len(line) < 160


@pytest.mark.parametrize("args, fragment", [
    (("pseudo-label", "--rounds", "0"), "Invalid value for '--rounds'"),
    (("tune", "lin", "--trials", "-1"), "Invalid value for '--trials'"),
    (("tune", "lin", "--trials", "abc"), "Invalid value for '--trials'"),
    (("nosuch",), "No such command 'nosuch'"),
])
def test_usage_errors_are_one_line_like_every_other_error(experiment: Path, args: tuple[str, ...], fragment: str):
    result = invoke(*args, *(("-c", experiment) if args[0] != "nosuch" else ()))
    one_line_error(result, fragment, "--help", code=2)


def test_ctrl_c_says_what_was_kept(experiment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("mer_ensemble.training.runner.train_all", interrupted)
    result = invoke("train-all", "-c", experiment, "--workdir", tmp_path / "wd")
    one_line_error(result, "interrupted (Ctrl-C)", "running the same command again continues", code=130)


@pytest.mark.parametrize("damage", ["nan", "constant", "symlink"])
def test_a_cache_entry_changed_in_place_is_read_again_from_the_feature_files(experiment: Path, tmp_path: Path,
                                                                             damage: str):
    wd = tmp_path / "wd"
    assert invoke("check", "-c", experiment, "--workdir", wd).exit_code == 0
    values = next((wd / "cache").glob("fa-UTT-*/values.npy"))
    clean = np.load(values).copy()
    before = values.stat()
    if damage == "nan":  # in place, same size and mtime: the stats of the feature files do not change
        array = np.load(values, mmap_mode="r+")
        array[3, 2] = np.nan
        array.flush()
        del array
        os.utime(values, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif damage == "constant":
        np.save(values, np.zeros_like(clean))
    else:
        other = tmp_path / "other.npy"
        np.save(other, clean[::-1].copy())
        values.unlink()
        values.symlink_to(other)
    result = invoke("check", "-c", experiment, "--workdir", wd)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and str(values) in warned[0] and "checksum" in warned[0], result.output
    assert np.array_equal(np.load(values), clean) and not values.is_symlink()
    assert invoke("train-all", "-c", experiment, "--workdir", wd).exit_code == 0


# --- folds ----------------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:37])  # ends inside a line


def _non_integer(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",two"
    path.write_text("\n".join(lines) + "\n")


def _minus_one(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",-1"
    path.write_text("\n".join(lines) + "\n")


def _duplicated(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[5]]) + "\n")


@pytest.mark.parametrize("damage, fragments", [
    (_truncate, ["folds.csv, line 4", "no fold id (the file is truncated?)"]),
    (lambda p: p.write_text(""), ["folds.csv: the folds file is empty"]),
    (lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), ["folds.csv: not a folds file"]),
    (_non_integer, ["folds.csv, line 4", "fold 'two' is not a fold id"]),
    (_minus_one, ["folds.csv, line 4", "fold '-1' is not a fold id"]),
    (_duplicated, ["folds.csv, line 62", "listed twice"]),
    (lambda p: p.with_suffix(".json").write_text("garbage"), ["folds.json: not valid JSON"]),
    (lambda p: p.with_suffix(".json").write_text(""), ["folds.json: the file is empty"]),
    (lambda p: p.with_suffix(".json").write_text("[1, 2]"), ["folds.json: expected a JSON object with the hash"]),
    (lambda p: p.with_suffix(".json").write_text("{}"), ["folds.json: expected a JSON object with the hash"]),
    (lambda p: p.with_suffix(".json").unlink(), ["folds.json: missing"]),
])
def test_a_damaged_folds_file_is_one_line_naming_it(experiment: Path, tmp_path: Path, damage, fragments: list[str]):
    wd = tmp_path / "wd"
    assert invoke("train-all", "-c", experiment, "--workdir", wd).exit_code == 0
    damage(wd / "folds.csv")
    kept = snapshot(wd)
    for command in ("check", "train-all", "blend"):
        line = one_line_error(invoke(command, "-c", experiment, "--workdir", wd), *fragments)
        assert "delete folds.csv and folds.json" in line or "edited since" in line or "different" in line
    assert snapshot(wd) == kept


def test_folds_json_is_written_first_so_a_kill_between_leaves_nothing_stale(experiment: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    from mer_ensemble.data import folds as folds_module

    real = folds_module.atomic_write_text
    written: list[str] = []

    def killed_after_first(path: Path, text: str) -> Path:
        if written:
            raise KeyboardInterrupt
        written.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(folds_module, "atomic_write_text", killed_after_first)
    wd = tmp_path / "wd"
    assert invoke("check", "-c", experiment, "--workdir", wd).exit_code == 130
    assert written == ["folds.json"] and not (wd / "folds.csv").exists()
    monkeypatch.setattr(folds_module, "atomic_write_text", real)
    assert invoke("check", "-c", experiment, "--workdir", wd).exit_code == 0


# --- label lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, fragment", [
    ({1: (14, '"'), 2: (0, '"')}, 'labels.csv, line 2: a quote " opened there closes on line 3'),
    ({5: (0, '"')}, 'labels.csv, line 6: a quote " opened there is never closed'),
    ({3: (20, '"'), 7: (0, '"')}, 'labels.csv, line 8: a quote " opened there is never closed'),
])
def test_an_unbalanced_quote_in_a_label_list_names_the_file_and_line(experiment: Path, tmp_path: Path,
                                                                     edit: dict, fragment: str):
    path = tmp_path / "data" / "labels.csv"
    lines = path.read_text().splitlines()
    for i, (pos, text) in edit.items():
        lines[i] = lines[i][:pos] + text + lines[i][pos:]
    path.write_text("\n".join(lines) + "\n")
    for command in ("check", "train-all", "validate-submission"):
        args = (command, "-c", experiment) + (("--workdir", tmp_path / "wd") if command != "validate-submission"
                                              else (tmp_path / "none.csv",))
        line = one_line_error(invoke(*args), fragment)
        assert "duplicate name" not in line


def test_a_line_break_inside_a_quoted_name_is_refused_but_allowed_in_a_sentence(tmp_path: Path):
    from mer_ensemble.data.layouts import read_meiju
    from mer_ensemble.errors import DataError

    (tmp_path / "Training.csv").write_text('FileName,sentence,emotion,intent\na.mp4,"one\ntwo",happy,agreeing\n'
                                           'b.mp4,three,sad,neutral\n')
    (tmp_path / "Testing.csv").write_text('FileName,sentence\nc.mp4,hi\n')
    table = read_meiju(tmp_path)
    assert table["name"].tolist() == ["a", "b", "c"]
    (tmp_path / "Testing.csv").write_text('FileName,sentence\n"c\n.mp4",hi\n')
    with pytest.raises(DataError, match=r"Testing.csv, line 2: a quoted field runs on to line 3"):
        read_meiju(tmp_path)
    from mer_ensemble.data.layouts import read_text_file

    (tmp_path / "said.csv").write_text('name,utterance\na,"one\ntwo"\n')  # data.text_column: utterance
    assert read_text_file([tmp_path / "said.csv"], "utterance") == {"a": "one\ntwo"}


# --- submissions ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meiju(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A MEIJU config and the zip blend would write for it: ``(config, zip)``."""
    from mer_ensemble.config import load_config
    from mer_ensemble.data.load import load_table, resolve_data_task
    from mer_ensemble.experiment import data_settings
    from mer_ensemble.submission import write_submission
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("meiju")
    assert invoke("demo-data", root / "data", "--layout", "meiju", "--n-train", 30, "--n-pool", 5, "--n-test", 8,
                  "--dims", "audio=8,text=8,video=8").exit_code == 0
    config = root / "meiju.yaml"
    config.write_text((REPO / "configs" / "demo-meiju.yaml").read_text().replace("../demo/meiju", str(root / "data")))
    settings = data_settings(load_config(config))
    table = load_table(settings)
    task = resolve_data_task(settings, table)
    names = table.loc[table["split"] == "test", "name"].tolist()
    labels = {t: np.zeros(len(names), dtype=np.int64) for t in task.target_names}
    return config, write_submission(labels, names, task, root / "sub.csv").with_suffix(".zip")


def _rezip(source: Path, target: Path, members: list[str], extra: dict[str, bytes] | None = None) -> Path:
    import zipfile

    payload = zipfile.ZipFile(source).read("submission.csv")
    with zipfile.ZipFile(target, "w") as archive:
        for name in members:
            archive.writestr(name, payload)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


@pytest.mark.parametrize("members, extra, fragment", [
    (["answers.csv"], None, "member 'answers.csv' is not submission.csv"),
    (["submission.csv"], {"notes.txt": b"hi"}, "must hold exactly submission.csv at its top level; it holds 2"),
    (["../submission.csv"], None, "member '../submission.csv' has a folder or '..'"),
    (["sub/submission.csv"], None, "member 'sub/submission.csv' has a folder"),
    ([], None, "it holds 0 member(s)"),
])
def test_validate_submission_refuses_a_zip_that_is_not_just_submission_csv(meiju, tmp_path: Path, members, extra,
                                                                           fragment: str):
    config, good = meiju
    assert invoke("validate-submission", good, "-c", config).exit_code == 0
    bad = _rezip(good, tmp_path / "bad.zip", members, extra)
    one_line_error(invoke("validate-submission", bad, "-c", config), str(bad), fragment)


@pytest.mark.parametrize("suffix", [".zip", ".csv"])
def test_a_truncated_zip_is_reported_as_a_damaged_zip(meiju, tmp_path: Path, suffix: str):
    config, good = meiju
    data = good.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    line = one_line_error(invoke("validate-submission", cut, "-c", config), str(cut), "damaged or truncated zip")
    assert "UTF-8" not in line


# --- model files ----------------------------------------------------------------------------------


class _Payload:
    def __reduce__(self):  # what a crafted file would run if it were unpickled
        return (os.system, ("echo unpickled",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content", [
    "pickle", b"", b"garbage", "wrong-dict", "bad-state",
])
def test_a_crafted_or_damaged_torch_model_file_is_a_model_error(tmp_path: Path, content):
    import pickle

    import torch

    from mer_ensemble.errors import ModelError
    from mer_ensemble.models.mlp import MLPModel

    path = tmp_path / "model.pt"
    if content == "pickle":
        path.write_bytes(pickle.dumps(_Payload()))
    elif content == "wrong-dict":
        torch.save({"model": "mlp", "init": {"params": {"nope": 1}}}, path)
    elif content == "bad-state":
        torch.save({"model": "mlp", "init": {"params": {}}, "levels": {}, "config": {}, "best_epoch": 0,
                    "state": {"w": torch.zeros(2)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=str(path)) as caught:
        MLPModel.load(str(path))
    assert "weights_only" not in str(caught.value) and "\n" not in str(caught.value)


# --- the workdir ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where, fragment", [
    ("", "is a file, but the workdir must be a folder"),
    ("store", "is a file, but the workdir keeps the prediction store in a folder"),
    ("cache", "is a file, but the workdir keeps the feature cache in a folder"),
    ("jobs", "is a file, but the workdir keeps the job results in a folder"),
])
def test_a_file_where_a_workdir_folder_belongs_is_named(experiment: Path, tmp_path: Path, where: str, fragment: str):
    wd = tmp_path / "wd"
    assert invoke("train-all", "-c", experiment, "--workdir", wd).exit_code == 0
    target = wd / where if where else wd
    import shutil

    shutil.rmtree(target)
    target.write_text("a file\n")
    commands = [("check", "-c", experiment), ("train-all", "-c", experiment), ("blend", "-c", experiment),
                ("leaderboard",)]
    for args in commands:
        one_line_error(invoke(*args, "--workdir", wd), f"{target}: {fragment}")
    if not where:
        nested = invoke("check", "-c", experiment, "--workdir", wd / "sub")
        one_line_error(nested, f"{wd}: is a file, but a folder above the workdir")


def test_leftovers_of_killed_writes_are_removed_and_writes_under_way_are_not(experiment: Path, tmp_path: Path):
    import socket
    import subprocess
    import sys

    from mer_ensemble.io import STALE_TEMP_SECONDS, temp_prefix

    wd = tmp_path / "wd"
    assert invoke("train-all", "-c", experiment, "--workdir", wd).exit_code == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = temp_prefix("x").split(".")[2].split("+")[0]
    assert host and host[0] in socket.gethostname() + "_"
    killed = wd / "store" / f".lin.npz.{host}+{dead}.k2j4h5g6.tmp"  # a write whose process is gone
    running = wd / "store" / f".lin.json{temp_prefix('')[1:]}abcd1234.tmp"  # this process: still under way
    other_host = wd / "jobs" / ".fold0-seed0.npz.elsewhere+1.abcd1234.tmp"  # another machine, recent
    old_other_host = wd / "jobs" / ".fold1-seed0.npz.elsewhere+1.abcd1234.tmp"  # another machine, long ago
    untagged = wd / "store" / ".lin.npz.x7y8z9w0.tmp"  # older versions named them so: age decides
    entry = next(p for p in (wd / "cache").iterdir() if p.is_dir())
    cache_left = wd / "cache" / f"{entry.name}.tmp.{host}+{dead}.q1w2e3r4"
    cache_left.mkdir()
    (cache_left / "values.npy").write_bytes(b"half")
    for path in (killed, running, other_host, old_other_host, untagged):
        path.write_bytes(b"half-written")
    long_ago = killed.stat().st_mtime - STALE_TEMP_SECONDS - 60
    for path in (old_other_host, untagged):
        os.utime(path, (long_ago, long_ago))
    keep_job = wd / "jobs" / "lin.tmp.elsewhere+1.abcd1234"  # a run id may look like that: never touched
    keep_job.mkdir()
    assert invoke("check", "-c", experiment, "--workdir", wd).exit_code == 0
    assert not killed.exists() and not cache_left.exists() and not old_other_host.exists() and not untagged.exists()
    assert running.exists() and other_host.exists() and keep_job.exists()
    assert invoke("blend", "-c", experiment, "--workdir", wd, "--out", tmp_path / "s.csv", "--set",
                  "blend.methods=[best, mean]").exit_code == 0


# --- blend --out: nothing stored is lost ---------------------------------------------------------


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A config with three runs (one reading the first modality only, one the second) and quick
    blend methods, trained once: ``(config, workdir)``."""
    root = tmp_path_factory.mktemp("trained")
    config = write_config(root / "exp.yaml", write_generic(root / "data"), models=[
        {"name": "linear", "id": "lin"}, {"name": "linear", "id": "lin_a", "features": ["audio"]},
        {"name": "linear", "id": "lin_t", "features": ["text"]}], **{"blend.methods": ["best", "mean", "greedy"]})
    assert invoke("train-all", "-c", config, "--workdir", root / "wd").exit_code == 0
    return config, root / "wd"


@pytest.fixture
def trained(trained_once: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A fresh copy of :func:`trained_once`'s workdir (its data is shared and never written):
    ``(config, workdir)``; ``tmp_path/data`` links to the data."""
    import shutil

    config, wd = trained_once
    shutil.copytree(wd, tmp_path / "wd")
    (tmp_path / "data").symlink_to(wd.parent / "data")
    return config, tmp_path / "wd"


@pytest.mark.parametrize("out, fragment", [
    ("wd/store/lin.csv", "inside the workdir's own files (the prediction store"),
    ("wd/store", "inside the workdir's own files (the prediction store"),
    ("wd/folds.csv", "inside the workdir's own files (the folds"),
    ("wd/cache/x.csv", "inside the workdir's own files (the feature cache"),
    ("wd/jobs/lin.csv", "inside the workdir's own files (the job results"),
    ("wd/optuna.csv", None),  # its sidecar optuna.json is not the workdir's: allowed
    ("data/labels.csv", "exists and is not a submission mer-ensemble wrote"),
    ("data/truth.csv", "exists and is not a submission mer-ensemble wrote"),
    ("notes.csv", "exists and is not a submission mer-ensemble wrote"),
    ("kept.csv", "exists and is not a submission mer-ensemble wrote"),  # its sidecar path holds another file
])
def test_blend_out_never_replaces_stored_data(trained, tmp_path: Path, out: str, fragment: str | None):
    config, wd = trained
    (tmp_path / "notes.csv").write_text("my notes\n")
    (tmp_path / "kept.json").write_text('{"mine": true}\n')
    before = {**snapshot(wd), **{f"data/{k}": v for k, v in snapshot(tmp_path / "data").items()}}
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / out)
    if fragment is None:
        assert result.exit_code == 0, result.output
        return
    one_line_error(result, fragment, "--force")
    after = {**snapshot(wd), **{f"data/{k}": v for k, v in snapshot(tmp_path / "data").items()}}
    assert after == before and (tmp_path / "notes.csv").read_text() == "my notes\n"
    assert not (wd / "blend").exists()  # refused before any work


def test_blend_out_replaces_its_own_submission_but_not_an_edited_one_without_force(trained, tmp_path: Path):
    config, wd = trained
    out = tmp_path / "sub.csv"
    assert invoke("blend", "-c", config, "--workdir", wd, "--out", out).exit_code == 0
    assert invoke("blend", "-c", config, "--workdir", wd, "--out", out).exit_code == 0  # its own: replaced
    out.write_text(out.read_text() + "\n")  # edited by hand: no longer what the sidecar records
    one_line_error(invoke("blend", "-c", config, "--workdir", wd, "--out", out), str(out), "exists and is not")
    forced = invoke("blend", "-c", config, "--workdir", wd, "--out", out, "--force")
    assert forced.exit_code == 0 and forced.output.strip().splitlines()[-1] == str(out)
    from mer_ensemble.submission import written_here

    assert written_here(out)


def test_blend_out_into_the_store_with_force_is_the_users_choice(trained, tmp_path: Path):
    config, wd = trained
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", wd / "store" / "blend.csv", "--force")
    assert result.exit_code == 0 and (wd / "store" / "blend.json").is_file()


def test_two_blends_of_one_store_are_identical(trained, tmp_path: Path):
    config, wd = trained
    args = ("--set", "blend.methods=[optuna, greedy, subset_greedy]", "--set", "blend.params={optuna: {n_trials: 3}}")
    outputs = []
    for i in range(3):  # each blend used to add 3 trials to the stored study, so later blends could differ
        out = tmp_path / f"b{i}.csv"
        result = invoke("blend", "-c", config, "--workdir", wd, "--out", out, *args)
        assert result.exit_code == 0, result.output
        sidecar = json.loads(out.with_suffix(".json").read_text())
        sidecar.pop("created"), sidecar.pop("submission")
        latest = dict(np.load(wd / "blend" / "latest.npz"))
        outputs.append((out.read_bytes(), sidecar, latest))
    for other in outputs[1:]:
        assert other[0] == outputs[0][0] and other[1] == outputs[0][1]
        assert all(np.array_equal(other[2][k], outputs[0][2][k]) for k in outputs[0][2])


def test_blend_names_the_configured_runs_missing_from_the_store(trained, tmp_path: Path):
    config, wd = trained
    for path in (wd / "store").glob("lin_a.*"):
        path.unlink()
    next((wd / "jobs" / "lin_t").glob("*/fold1-seed0.npz")).unlink()  # a train-all killed before lin_t was stored
    for path in (wd / "store").glob("lin_t.*"):
        path.unlink()
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, result.output
    assert "lin_a (not in the store; 3 of 3 fold jobs trained)" in warned[0]
    assert "lin_t (not in the store; 2 of 3 fold jobs trained)" in warned[0] and "blending the 1 stored" in warned[0]
    refused = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "t.csv", "--require-all")
    one_line_error(refused, "--require-all: 2 configured run(s) missing or partial", "lin_a", "lin_t")
    assert not (tmp_path / "t.csv").exists()


def test_blend_names_a_run_stored_with_fewer_seeds(trained, tmp_path: Path):
    config, wd = trained
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "s.csv", "--set",
                    "models.1.seeds=[0, 1]")
    assert result.exit_code == 0 and "lin_a (stored with seeds [0] of [0, 1])" in result.output, result.output


@pytest.mark.parametrize("content", ["random", "truncated"])
def test_a_corrupt_optuna_db_is_one_line_naming_it(trained, tmp_path: Path, content: str):
    config, wd = trained
    args = ("--set", "blend.methods=[optuna]", "--set", "blend.params={optuna: {n_trials: 2}}")
    assert invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "a.csv", *args).exit_code == 0
    db = wd / "optuna.db"
    data = db.read_bytes()
    db.write_bytes(np.random.default_rng(0).bytes(5000) if content == "random" else data[: len(data) // 2])
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "b.csv", *args)
    one_line_error(result, f"blend.storage sqlite:///{db}", "damaged", f"delete {db}")
    assert not (tmp_path / "b.csv").exists()


def test_report_out_and_tune_write_config_never_replace_stored_data(trained, tmp_path: Path):
    config, wd = trained
    kept = snapshot(wd)
    labels = (tmp_path / "data" / "labels.csv").read_bytes()
    one_line_error(invoke("report", "--workdir", wd, "--out", wd / "store" / "lin.json"), "the prediction store")
    one_line_error(invoke("report", "--workdir", wd, "--out", tmp_path / "data" / "labels.csv"), "is not a report")
    refused = invoke("tune", "lin", "-c", config, "--workdir", wd, "--trials", "1", "--write-config", config)
    one_line_error(refused, f"{config} exists and is not a config mer-ensemble tune wrote")
    assert snapshot(wd) == kept and (tmp_path / "data" / "labels.csv").read_bytes() == labels
    report = tmp_path / "r.html"
    for _ in range(2):  # its own report is replaced
        assert invoke("report", "--workdir", wd, "--out", report).exit_code == 0
    tuned = tmp_path / "tuned.yaml"
    for _ in range(2):  # its own config is replaced
        result = invoke("tune", "lin", "-c", config, "--workdir", wd, "--trials", "1", "--write-config", tuned)
        assert result.exit_code == 0, result.output


# --- found by the property tests ------------------------------------------------------------------


def test_matrices_in_an_utterance_level_folder_are_refused_not_left_uninitialised(experiment: Path, tmp_path: Path):
    folder = tmp_path / "data" / "features" / "fa-UTT"
    for path in folder.glob("*.npy"):
        np.save(path, np.ones((3, 8), np.float32))  # every file alike: no odd one out to report
    one_line_error(invoke("check", "-c", experiment, "--workdir", tmp_path / "wd"), "shape (3, 8)",
                   "(D,) or (1, D) at utterance level")


@pytest.mark.parametrize("key, value, fragment", [
    ("targets", None, "targets is None, expected a list of target names"),
    ("classes", {"emotion": ["anger"]}, "expected a list of at least 2 class names per target"),
    ("key", "other", "the manifest names run 'other', but the file is lin.json"),
    ("seeds", "0", "seeds is '0'"),
])
def test_a_store_manifest_with_values_of_the_wrong_type_is_one_line(experiment: Path, tmp_path: Path, key: str,
                                                                     value, fragment: str):
    wd = tmp_path / "wd"
    assert invoke("train-all", "-c", experiment, "--workdir", wd).exit_code == 0
    path = wd / "store" / "lin.json"
    manifest = json.loads(path.read_text())
    manifest[key] = value
    path.write_text(json.dumps(manifest))
    for args in (("leaderboard",), ("blend", "-c", experiment)):
        one_line_error(invoke(*args, "--workdir", wd), "run lin", str(path), fragment)


# --- the bar, as the issue states it --------------------------------------------------------------


def _at_most_two_lines(result, culprit: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and 1 <= len(lines) <= 2, result.output
    assert culprit in result.output and "Traceback" not in result.output, result.output


def test_the_bar(trained, tmp_path: Path, meiju):
    config, wd = trained
    data = tmp_path / "data"
    run = ("blend", "-c", config, "--workdir", wd)
    # --out into the store or over the label file changes nothing
    kept, labels = snapshot(wd), (data / "labels.csv").read_bytes()
    for out in (wd / "store" / "lin.csv", data / "labels.csv"):
        assert invoke(*run, "--out", out).exit_code != 0
    assert snapshot(wd) == kept and (data / "labels.csv").read_bytes() == labels
    # two blends of one store are identical
    assert invoke(*run, "--out", tmp_path / "a.csv").exit_code == 0
    assert invoke(*run, "--out", tmp_path / "b.csv").exit_code == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # cv.seeds: [] and [-1] each get at most two lines naming the culprit
    for seeds in ("[]", "[-1]"):
        for command in ("check", "train-all"):
            _at_most_two_lines(invoke(command, "-c", config, "--workdir", wd, "--set", f"cv.seeds={seeds}"),
                               "cv.seeds")
    # a garbage folds.json, a truncated folds.csv
    for name, damage in (("folds.json", b"garbage"), ("folds.csv", (wd / "folds.csv").read_bytes()[:37])):
        original = (wd / name).read_bytes()
        (wd / name).write_bytes(damage)
        _at_most_two_lines(invoke("train-all", "-c", config, "--workdir", wd), str(wd / name))
        (wd / name).write_bytes(original)
    # a corrupt optuna.db
    optuna_args = ("--set", "blend.methods=[optuna]", "--set", "blend.params={optuna: {n_trials: 2}}")
    (wd / "optuna.db").write_bytes(b"SQLite format 3\x00" + bytes(3000))
    _at_most_two_lines(invoke(*run, "--out", tmp_path / "c.csv", *optuna_args), str(wd / "optuna.db"))
    (wd / "optuna.db").unlink()
    # a float64 1e300 feature (in data of its own: the trained data is shared)
    own = write_config(tmp_path / "own.yaml", write_generic(tmp_path / "own"))
    feature = tmp_path / "own" / "features" / "fa-UTT" / "utt0004.npy"
    np.save(feature, np.full(8, 1e300))
    for command in ("check", "train-all"):
        _at_most_two_lines(invoke(command, "-c", own, "--workdir", tmp_path / "own-wd"), str(feature))
    # a run missing from the store is named
    for path in (wd / "store").glob("lin_t.*"):
        path.unlink()
    result = invoke(*run, "--out", tmp_path / "d.csv")
    assert result.exit_code == 0 and "warning: 1 configured run(s) missing or partial" in result.output
    assert "lin_t (not in the store" in result.output
    # a zip without submission.csv does not validate
    meiju_config, good = meiju
    bad = _rezip(good, tmp_path / "bad.zip", ["answers.csv"])
    _at_most_two_lines(invoke("validate-submission", bad, "-c", meiju_config), "submission.csv")
