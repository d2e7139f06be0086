"""Bad input as an adversarial user gives it: ``check`` refuses what ``train-all`` refuses,
every error is one line naming the file or run, filesystem errors name the path, names
and run ids cannot reach outside their folders."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import write_config, write_generic

runner = CliRunner()


def invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "pickle" not in result.output and "Aborted" not in result.output


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return write_config(tmp_path / "exp.yaml", write_generic(tmp_path / "data"))


@pytest.mark.parametrize("override, fragment", [
    ("models.0.name=nosuch", "unknown model 'nosuch'"),
    ("models.0.params={bogus: 1}", "unknown parameter(s) ['bogus']"),
    ("models.0.params={C: abc}", "C='abc' must be a number"),
    ("models.0.params={C: -1}", "C=-1 must be a number > 0"),
    ("models.0.params={max_iter: 2.5}", "max_iter=2.5 must be an integer"),
    ("models.0.features=[nope]", "'nope' is neither a modality"),
    ("models.0.targets=[nope]", "unknown target(s) ['nope']"),
    ("models=[{name: audio_text_fusion, id: atf, features: [audio]}]", "needs features of modality 'audio' and 'text'"),
    ("blend.methods=[nope]", "blend.methods: unknown blender(s) ['nope']"),
    ("blend.params={optuna: {trials: 3}}", "blend.params.optuna: unknown setting(s) ['trials']"),
    ("blend.runs=[nolin*]", "blend.runs: 'nolin*' matches no run id"),
    ("pseudo.runs=[nope]", "pseudo.runs: unknown run id(s) ['nope']"),
    ("pseudo.min_agree=3", "pseudo.min_agree: 3 runs must agree"),
    ("train.backend=dask", "train.scheduler: the dask backend needs a scheduler address"),
])
def test_check_refuses_what_train_all_refuses(experiment: Path, tmp_path: Path, override: str, fragment: str):
    checked = invoke("check", "-c", experiment, "--workdir", tmp_path / "wd", "--set", override)
    _one_line_error(checked, fragment)
    if not override.startswith(("blend", "pseudo")):
        trained = invoke("train-all", "-c", experiment, "--workdir", tmp_path / "wd", "--set", override)
        _one_line_error(trained, fragment)
        assert not (tmp_path / "wd" / "store").exists()


def test_check_ok_means_train_all_starts(experiment: Path, tmp_path: Path):
    result = invoke("check", "-c", experiment, "--workdir", tmp_path / "wd")
    assert result.exit_code == 0 and "models: 1 run(s) checked" in result.output
    assert invoke("train-all", "-c", experiment, "--workdir", tmp_path / "wd").exit_code == 0


def test_a_changed_feature_file_is_caught_by_check(experiment: Path, tmp_path: Path):
    assert invoke("check", "-c", experiment, "--workdir", tmp_path / "wd").exit_code == 0
    path = tmp_path / "data" / "features" / "fb-UTT" / "utt0010.npy"
    before = path.stat()
    with open(path, "r+b") as handle:  # in place: the folder's mtime does not change
        np.save(handle, np.full(6, np.nan, np.float32))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    _one_line_error(invoke("check", "-c", experiment, "--workdir", tmp_path / "wd"), str(path), "NaN/inf")


def test_a_run_id_cannot_escape_the_workdir(experiment: Path, tmp_path: Path):
    result = invoke("train-all", "-c", experiment, "--workdir", tmp_path / "wd", "--set", "models.0.id=../../escaped")
    _one_line_error(result, "models.0.id", "not a safe run id")
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("bad", ["../../x", "/abs/x"])
def test_a_list_name_cannot_escape_the_data_root(experiment: Path, tmp_path: Path, bad: str):
    labels = pd.read_csv(tmp_path / "data" / "labels.csv")
    labels.loc[labels["split"] == "test", "name"] = [bad] + labels.loc[labels["split"] == "test", "name"].tolist()[1:]
    labels.to_csv(tmp_path / "data" / "labels.csv", index=False)
    line = int(np.flatnonzero(labels["name"] == bad)[0]) + 2
    for command in ("check", "train-all"):
        result = invoke(command, "-c", experiment, "--workdir", tmp_path / "wd")
        _one_line_error(result, f"labels.csv, line {line}: name {bad!r}")


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(400)), "lin.npz: cannot be read"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "lin.npz: cannot be read"),
    (lambda p: p.write_bytes(b""), "lin.npz: cannot be read: the file is empty"),
    (lambda p: p.with_suffix(".json").write_text(p.with_suffix(".json").read_text()[:40]), "lin.json: not valid JSON"),
    (lambda p: p.with_suffix(".json").write_text(""), "lin.json: the file is empty"),
])
def test_a_damaged_store_record_is_one_line_naming_the_run(experiment: Path, tmp_path: Path, damage, fragment: str):
    wd = tmp_path / "wd"
    assert invoke("train-all", "-c", experiment, "--workdir", wd).exit_code == 0
    damage(wd / "store" / "lin.npz")
    _one_line_error(invoke("leaderboard", "--workdir", wd), "run lin", fragment)
    blended = invoke("blend", "-c", experiment, "--workdir", wd, "--out", tmp_path / "s.csv")
    _one_line_error(blended, "run lin", fragment)
    assert not (tmp_path / "s.csv").exists()


def test_an_empty_per_frame_file_is_named_even_with_debug(experiment: Path, tmp_path: Path):
    folder = tmp_path / "data" / "features" / "fd"
    for name in pd.read_csv(tmp_path / "data" / "labels.csv")["name"]:
        (folder / name).mkdir(parents=True)
        np.save(folder / name / "000.npy", np.zeros(3, np.float32))
    (folder / "utt0005" / "000.npy").write_bytes(b"")
    args = ("check", "-c", experiment, "--workdir", tmp_path / "wd", "--set", "data.features={video: [fd]}")
    _one_line_error(invoke(*args), str(folder / "utt0005" / "000.npy"), "the file is empty")
    debug = invoke(*args, env={"MER_DEBUG": "1"})
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "DataError"


def test_an_unexpected_eof_is_a_bug_with_a_traceback(experiment: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    def broken(*_args: object, **_kwargs: object) -> str:
        raise EOFError("read past the end")

    monkeypatch.setattr("mer_ensemble.data.summary.summarise", broken)
    result = invoke("check", "-c", experiment, "--workdir", tmp_path / "wd")
    assert isinstance(result.exception, RuntimeError) and "Aborted" not in result.output


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "No space left on device"),
                                          (errno.EROFS, "Read-only file system")])
def test_filesystem_errors_are_one_line_with_the_path(experiment: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, code: int, reason: str):
    wd = tmp_path / "wd"
    assert invoke("check", "-c", experiment, "--workdir", wd).exit_code == 0

    def fail(_fd: int) -> None:  # a full or read-only disk fails the write of every job result
        raise OSError(code, reason)

    monkeypatch.setattr(os, "fsync", fail)
    result = invoke("train-all", "-c", experiment, "--workdir", wd)
    _one_line_error(result, f"{wd}/jobs/lin/", f".npz: {reason}")
    assert not list(wd.rglob("*.tmp"))


def test_validate_submission_accepts_the_zip_blend_writes(tmp_path: Path):
    from mer_ensemble.config import load_config
    from mer_ensemble.data.load import load_table, resolve_data_task
    from mer_ensemble.experiment import data_settings
    from mer_ensemble.submission import write_submission
    from tests.conftest import REPO

    data = tmp_path / "meiju"
    assert invoke("demo-data", data, "--layout", "meiju", "--n-train", 40, "--n-pool", 10, "--n-test", 12,
                  "--dims", "audio=8,text=8,video=8").exit_code == 0
    config = tmp_path / "meiju.yaml"
    config.write_text((REPO / "configs" / "demo-meiju.yaml").read_text().replace("../demo/meiju", str(data)))
    cfg = load_config(config)
    table = load_table(data_settings(cfg))
    task = resolve_data_task(data_settings(cfg), table)
    names = table.loc[table["split"] == "test", "name"].tolist()
    labels = {t: np.zeros(len(names), dtype=np.int64) for t in task.target_names}
    (tmp_path / "sub").mkdir()
    csv_path = write_submission(labels, names, task, tmp_path / "sub")
    result = invoke("validate-submission", csv_path.with_suffix(".zip"), "-c", config)
    assert result.exit_code == 0 and f"({len(names)} rows)" in result.output, result.output
