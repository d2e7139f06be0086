"""Raw inputs beside the features (data/raw.py): keys, text cleaning, audio files by name, digests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.data import RAW_AUDIO, RAW_TEXT
from mer_ensemble.data.raw import describe_missing, find_audio, missing_rows, raw_digest, raw_key, raw_kind, text_values
from mer_ensemble.errors import DataError


def test_keys_of_raw_inputs():
    assert (raw_key("text"), raw_key("audio")) == (RAW_TEXT, RAW_AUDIO) == ("raw:text", "raw:audio")
    assert raw_kind("raw:text") == "text" and raw_kind("text") is None and raw_kind("audio@group") is None


def test_texts_are_stripped_and_blank_is_none():
    values = text_values(["  hi ", "", None, float("nan"), 3])
    assert values.dtype == object and values.tolist() == ["hi", None, None, None, "3"]
    assert missing_rows(values).tolist() == [False, True, True, True, False]
    names = np.array(["a", "b", "c", "d", "e"], dtype=object)
    assert describe_missing("text", values, names, first=2) == "raw text: 3 of 5 rows lack it (first: b, c)"
    assert describe_missing("text", text_values(["x"]), names[:1]) is None


def test_audio_files_are_found_by_name_with_the_preferred_extension(tmp_path: Path):
    for name in ("a.wav", "a.ogg", "b.FLAC", "c.m4a", "d.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "e.wav").mkdir()  # a folder is not a file
    found = find_audio(tmp_path, ["a", "b", "c", "d", "e"])
    assert found.tolist() == [str(tmp_path.resolve() / "a.wav"), str(tmp_path.resolve() / "b.FLAC"),
                              str(tmp_path.resolve() / "c.m4a"), None, None]
    with pytest.raises(DataError, match="data.audio_dir: .*nowhere is not a folder"):
        find_audio(tmp_path / "nowhere", ["a"])


def test_digests_follow_the_texts_and_the_audio_files(tmp_path: Path):
    texts = text_values(["a", None, "b"])
    assert raw_digest("text", texts) == raw_digest("text", text_values(["a", None, "b"]))
    assert raw_digest("text", texts) != raw_digest("text", text_values(["a", "b", None]))
    (tmp_path / "x.wav").write_bytes(b"1234")
    paths = find_audio(tmp_path, ["x", "y"])
    before = raw_digest("audio", paths)
    (tmp_path / "x.wav").write_bytes(b"123456")  # rewritten: another size
    assert raw_digest("audio", paths) != before
