"""Readers for the competitions' label layouts, each into one table.

Every reader returns a :class:`pandas.DataFrame` with columns ``name``,
``split`` (train / dev / unlabeled / test), one string column per target
(``None`` where unknown) and, when asked, a ``group`` column. Features are read
separately (:mod:`mer_ensemble.data.features`).

Names are checked where they are read (:func:`mer_ensemble.names.check_name`: no path
separator, ``..`` or control character; the error names the file and line), a media
extension is stripped once (:func:`mer_ensemble.names.strip_extension`), and a UTF-8
byte-order mark at the start of a list is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mer_ensemble.errors import DataError
from mer_ensemble.names import check_name, strip_extension

__all__ = ["read_generic", "read_layout", "read_meiju", "read_mer2024"]

_SPLITS = {"train", "dev", "unlabeled", "test"}
_SPLIT_ALIASES = {"valid": "dev", "validation": "dev", "val": "dev", "unlabelled": "unlabeled", "pool": "unlabeled"}


def _clean_names(values: Sequence[str], path: Path, lines: Sequence[int]) -> list[str]:
    """Names stripped of blanks and one media extension, each checked (errors name file and line)."""
    return [check_name(strip_extension(str(v).strip()), f"{path}, line {line}")
            for v, line in zip(values, lines, strict=True)]


def _load_csv(path: Path) -> pd.DataFrame:
    """A CSV as strings (blank cells ""), with one-line errors; a UTF-8 BOM is dropped."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _read_csv(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{what} file {path} not found")
    df = _load_csv(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if "name" in df.columns:
        df["name"] = _clean_names(df["name"].tolist(), path, [i + 2 for i in range(len(df))])
    return df


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of the non-blank lines of a text list (UTF-8, BOM dropped)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the list as UTF-8") from None
    return [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _blank_to_none(series: pd.Series) -> pd.Series:
    """Strip label strings; blank (or NaN) becomes None, in an object column."""
    values = [None if (v is None or (isinstance(v, float) and v != v) or str(v).strip() == "") else str(v).strip()
              for v in series.tolist()]
    return pd.Series(values, index=series.index, dtype=object)


def _name_list(path: Path, what: str) -> pd.DataFrame:
    """A name list: a CSV with a ``name`` column, or a text file of one name per line."""
    if not path.is_file():
        raise DataError(f"{what} file {path} not found")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, ["name"], what)
    lines = _read_lines(path)
    names = _clean_names([text.split()[0] for _, text in lines], path, [n for n, _ in lines])
    return pd.DataFrame({"name": names})


def read_mer2024(
    root: Path,
    *,
    targets: Sequence[str],
    label_file: str | None = None,
    test_file: str | None = None,
    pool_file: str | None = None,
    group_by: str | None = None,
) -> pd.DataFrame:
    """MER2024: ``label-disdim.csv`` (name, discrete[, valence]), a test name list and an optional pool list.

    Test names listed in the pool are kept as test rows only (MER2024 hides the
    test set inside the unlabelled pool).
    """
    label_path = root / (label_file or _first_existing(root, ["label-disdim.csv", "label-train.csv"]))
    labels = _read_csv(label_path, ["name", *targets], "label")
    frames = [_table(labels, "train", targets, group_by, label_path)]
    test_path = root / (test_file or _first_existing(root, ["test-names.csv", "test-names.txt", "test.csv"]))
    test = _name_list(test_path, "test name list")
    frames.append(_table(test, "test", targets, group_by, test_path, labelled=False))
    if pool_file or (root / "pool-names.csv").is_file():
        pool_path = root / (pool_file or "pool-names.csv")
        pool = _name_list(pool_path, "pool name list")
        pool = pool[~pool["name"].isin(set(test["name"]))]
        frames.append(_table(pool, "unlabeled", targets, group_by, pool_path, labelled=False))
    return pd.concat(frames, ignore_index=True)


def _first_existing(root: Path, candidates: Sequence[str]) -> str:
    for name in candidates:
        if (root / name).is_file():
            return name
    raise DataError(f"{root}: none of {list(candidates)} found; set data.label_file / data.test_file")


def _table(
    df: pd.DataFrame,
    split: str,
    targets: Sequence[str],
    group_by: str | None,
    source: Path,
    labelled: bool = True,
) -> pd.DataFrame:
    out = pd.DataFrame({"name": df["name"].astype(str), "split": split})
    for t in targets:
        out[t] = _blank_to_none(df[t]).values if (labelled and t in df.columns) else None
    if group_by:
        if group_by in df.columns:
            out["group"] = df[group_by].astype(str).values
        elif labelled:
            raise DataError(f"{source}: data.group_by column {group_by!r} not found; found {list(df.columns)}")
        else:
            out["group"] = None
    return out


def _meiju_split_file(path: Path, split: str, targets: Sequence[str]) -> pd.DataFrame:
    rows = []
    for lineno, line in _read_lines(path):
        parts = line.split()
        if split in ("train", "dev") and len(parts) < 1 + len(targets):
            raise DataError(
                f"{path}, line {lineno}: expected '<file> {' '.join('<' + t + '>' for t in targets)}', got {line!r}"
            )
        name = check_name(strip_extension(parts[0]), f"{path}, line {lineno}")
        row = {"name": name, "split": split}
        for i, t in enumerate(targets):
            row[t] = parts[1 + i] if split in ("train", "dev") and len(parts) > 1 + i else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["name", "split", *targets])


def read_meiju(
    root: Path,
    *,
    targets: Sequence[str] = ("emotion", "intent"),
    pool_file: str | None = None,
) -> pd.DataFrame:
    """MEIJU@2025: ``Training_files.txt`` / ``Validation_files.txt`` / ``Testing_files.txt``
    (lines ``<file.ext> <emotion> <intent>``) or the official CSVs (FileName, sentence,
    emotion, intent), plus an unlabelled list (``NoAnnotation_files.txt`` by default)."""
    sources = {
        "train": ["Training_files.txt", "Training.csv", "train.csv"],
        "dev": ["Validation_files.txt", "Validation.csv", "valid.csv"],
        "test": ["Testing_files.txt", "Testing.csv", "test.csv"],
    }
    frames = []
    for split, names in sources.items():
        found = next((root / n for n in names if (root / n).is_file()), None)
        if found is None:
            if split == "dev":
                continue
            raise DataError(f"{root}: no {split} list found; expected one of {names}")
        if found.suffix == ".csv":
            df = _read_csv_any_name(found, targets if split != "test" else ())
            frames.append(_table(df, split, targets, None, found, labelled=split != "test"))
        else:
            frames.append(_meiju_split_file(found, split, targets))
    pool_path = root / (pool_file or "NoAnnotation_files.txt")
    if pool_file or pool_path.is_file():
        pool = _name_list(pool_path, "unlabelled list")
        frames.append(_table(pool, "unlabeled", targets, None, pool_path, labelled=False))
    return pd.concat(frames, ignore_index=True)


def _read_csv_any_name(path: Path, targets: Sequence[str]) -> pd.DataFrame:
    df = _load_csv(path)
    for col in ("FileName", "filename", "file", "name"):
        if col in df.columns:
            df["name"] = _clean_names(df[col].tolist(), path, [i + 2 for i in range(len(df))])
            break
    else:
        raise DataError(f"{path}: missing a name column (FileName or name); found {list(df.columns)}")
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def read_generic(
    root: Path,
    *,
    targets: Sequence[str],
    label_file: str | None = None,
    group_by: str | None = None,
) -> pd.DataFrame:
    """Generic: ``labels.csv`` with ``name``, ``split`` and one column per target (blank = unknown)."""
    path = root / (label_file or "labels.csv")
    df = _read_csv(path, ["name", "split", *targets], "label")
    split = df["split"].str.strip().str.lower().replace(_SPLIT_ALIASES)
    bad = sorted(set(split) - _SPLITS)
    if bad:
        row = int(split[split == bad[0]].index[0]) + 2
        raise DataError(f"{path}, row {row}: column split has {bad[0]!r}; expected one of {sorted(_SPLITS)}")
    out = pd.DataFrame({"name": df["name"].astype(str), "split": split.values})
    for t in targets:
        out[t] = _blank_to_none(df[t]).values
    out.loc[out["split"].isin(["test", "unlabeled"]), list(targets)] = None
    if group_by:
        if group_by not in df.columns:
            raise DataError(f"{path}: data.group_by column {group_by!r} not found; found {list(df.columns)}")
        out["group"] = df[group_by].astype(str).values
    return out


def read_layout(layout: str, root: Path, *, targets: Sequence[str], **kwargs) -> pd.DataFrame:  # noqa: ANN003
    """Dispatch to the reader of ``layout`` and check names are unique."""
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder")
    if layout == "mer2024":
        table = read_mer2024(root, targets=targets, **kwargs)
    elif layout == "meiju":
        table = read_meiju(root, targets=targets, pool_file=kwargs.get("pool_file"))
        if kwargs.get("group_by"):
            raise DataError("data.group_by is not supported by the meiju layout (it has no group column)")
    elif layout == "generic":
        table = read_generic(
            root, targets=targets, label_file=kwargs.get("label_file"), group_by=kwargs.get("group_by")
        )
    else:
        raise DataError(f"data.layout: unknown layout {layout!r}; expected mer2024, meiju or generic")
    dup = table["name"][table["name"].duplicated()]
    if len(dup):
        first = dup.iloc[0]
        where = sorted(set(table.loc[table["name"] == first, "split"]))
        raise DataError(f"{root}: duplicate name {first!r} (in {', '.join(where)}); {dup.nunique()} name(s) repeated")
    empty = [s for s in ("train", "test") if not (table["split"] == s).any()]
    if empty:
        raise DataError(f"{root}: the {empty[0]} split is empty")
    if (table["name"] == "").any():
        raise DataError(f"{root}: a row has an empty name")
    return table
