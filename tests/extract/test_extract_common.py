"""Shared pieces of extraction (extract/_common.py): layer choice, levels, pooling and the options."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from mer_ensemble.errors import ExtractError
from mer_ensemble.extract import parse_layers
from mer_ensemble.extract._common import ExtractOptions, ItemFailure, level_from_out, pool_frames
from tests.extract.cases import cli


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("last", (-1,)), ("last4", (-4, -3, -2, -1)), ("-4,-3,-2,-1", (-4, -3, -2, -1)), ("6", (6,)), (None, None)],
)
def test_parse_layers(spec: str | None, expected: tuple[int, ...] | None) -> None:
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["top", "-1,-1", "last0", ","])
def test_parse_layers_rejects(spec: str) -> None:
    with pytest.raises(ExtractError, match="--layers"):
        parse_layers(spec)


def test_level_follows_folder_suffix() -> None:
    assert level_from_out("f/hubert-UTT", None) == "utt"
    assert level_from_out("f/hubert-FRA", None) == "frame"
    assert level_from_out("f/custom", "frame") == "frame"
    with pytest.raises(ExtractError, match="contradicts"):
        level_from_out("f/hubert-UTT", "frame")


def test_pool_frames() -> None:
    frames = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(pool_frames(frames, "utt", "mean", False), [2.0, 2.0])
    np.testing.assert_allclose(pool_frames(frames, "utt", "cls", True), [0.6, 0.8])
    np.testing.assert_array_equal(pool_frames(frames, "frame", "mean", True), frames)  # frames stay raw
    with pytest.raises(ItemFailure, match="non-finite"):
        pool_frames(np.array([[np.inf, 0.0]]), "utt", "mean", False)


def test_cli_import_stays_light() -> None:
    code = "import sys, mer_ensemble.cli; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_options_parse_the_command_line_forms_and_name_unknown_fields() -> None:
    options = ExtractOptions.build(layers="last4", pooling=" CLS ", text_replace=["’='", ("a", "b")], batch_size=3)
    assert options.layers == (-4, -3, -2, -1) and options.pooling == "cls" and options.batch_size == 3
    assert options.text_replace == (("’", "'"), ("a", "b"))
    assert ExtractOptions.build(options, batch_size=8).layers == (-4, -3, -2, -1), "other fields are kept"
    assert ExtractOptions().level is None and ExtractOptions().with_defaults(pooling="mean").pooling == "mean"
    with pytest.raises(ExtractError, match=r"unknown extract option\(s\) \['batch'\]"):
        ExtractOptions.build(batch=3)
    with pytest.raises(ExtractError, match="--text-replace 'nothing' must look like OLD=NEW"):
        ExtractOptions(text_replace=("nothing",))


def test_the_command_has_one_flag_per_option_and_passes_them_as_one_object(monkeypatch, tmp_path) -> None:
    import mer_ensemble.extract as extract

    help_text = cli("--help").output
    for f in fields(ExtractOptions):
        for flag in f.metadata["flags"]:
            assert flag.split("/")[0][:15] in help_text, f"{f.name}: {flag} missing from extract --help"
    seen = {}

    def fake(modality, model, inputs, out, options, **kwargs):  # noqa: ANN001, ANN003
        seen.update(options=options, **kwargs)
        raise ExtractError("stop here")

    monkeypatch.setattr(extract, "extract_features", fake)
    result = cli("-m", "text", "--model", tmp_path, "-i", tmp_path, "-o", tmp_path / "x-UTT", "--layers", "last",
                 "-b", 3, "--text-replace", "x=y", "--no-normalize", "--overwrite")
    assert result.exit_code == 1 and "stop here" in result.output
    assert seen["options"] == ExtractOptions(layers=(-1,), batch_size=3, text_replace=(("x", "y"),), normalize=False)
    assert seen["overwrite"] is True and seen["options"].chunk_seconds == 30.0
