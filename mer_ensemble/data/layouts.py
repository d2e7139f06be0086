"""Readers for the competitions' label layouts, each into one table.

Every reader returns a :class:`pandas.DataFrame` with columns ``name``,
``split`` (train / dev / unlabeled / test), one string column per target
(``None`` where unknown), when asked a ``group`` column, and the rows' text in a
``raw:text`` column where the lists carry one (the generic layout's text column, MEIJU's
``sentence``). Features are read separately (:mod:`mer_ensemble.data.features`); a
transcript CSV beside the lists is read by :func:`read_text_file`.

Names are checked where they are read (:func:`mer_ensemble.names.check_name`: no path
separator, ``..`` or control character; the error names the file and line), a media
extension is stripped once (:func:`mer_ensemble.names.strip_extension`), and a UTF-8
byte-order mark at the start of a list is dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mer_ensemble.data.raw import RAW_TEXT, TEXT_COLUMNS
from mer_ensemble.errors import DataError
from mer_ensemble.names import check_name, strip_extension

__all__ = ["MEIJU_LISTS", "read_generic", "read_layout", "read_meiju", "read_mer2024", "read_text_file"]

_SPLITS = {"train", "dev", "unlabeled", "test"}
_SPLIT_ALIASES = {"valid": "dev", "validation": "dev", "val": "dev", "unlabelled": "unlabeled", "pool": "unlabeled"}


def _clean_names(values: Sequence[str], path: Path, lines: Sequence[int]) -> list[str]:
    """Names stripped of blanks and one media extension, each checked (errors name file and line)."""
    return [check_name(strip_extension(str(v).strip()), f"{path}, line {line}")
            for v, line in zip(values, lines, strict=True)]


#: columns whose cells may hold a line break (free text such as MEIJU's transcriptions)
_TEXT_COLUMNS = {"transcription", *TEXT_COLUMNS}


def _quote_problem(path: Path) -> str | None:
    """Where a quoted field swallows line breaks (an unbalanced ``"``): ``"line N: ..."``, or None."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    reader = csv.reader(io.StringIO(text), strict=True)
    end = 0
    try:
        for _ in reader:
            start, end = end + 1, reader.line_num
            if end > start:
                return (f"line {start}: a quoted field runs on to line {end} (an unbalanced \" on line {start}?); "
                        "each row must sit on one line")
    except csv.Error as exc:
        if "end of data" in str(exc):
            return f"line {end + 1}: a quote \" opened there is never closed"
        if reader.line_num <= end + 1:
            return f"line {end + 1}: malformed quoting ({exc})"
        return (f"line {end + 1}: a quote \" opened there closes on line {reader.line_num} and is followed by "
                f"more text ({exc}); an unbalanced quote?")
    return None


def _load_csv(path: Path, free_text: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV as strings (blank cells ""), with one-line errors; a UTF-8 BOM is dropped. A line
    break inside a quoted cell (an unbalanced quote, which shifts every later column) is refused,
    naming the line, except in free-text columns such as ``sentence`` (and those in ``free_text``)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        where = _quote_problem(path) if isinstance(exc, pd.errors.ParserError) else None
        if where is not None:
            raise DataError(f"{path}, {where}") from None
        raise DataError(f"{path}: cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    free = _TEXT_COLUMNS | {c.lower() for c in free_text}
    checked = [c for c in df.columns if c.lower() not in free]
    if any(df[c].str.contains("[\r\n]", regex=True).any() for c in checked):
        raise DataError(f"{path}, {_quote_problem(path) or 'a cell holds a line break'}")
    return df


def _headerless(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A CSV whose first line is already a row (``<name>.mp4,<sentence>``, as some transcription
    files come) read again without a header: columns ``name``, ``sentence``, then ``column<i>``."""
    first = str(df.columns[0]).strip() if len(df.columns) else ""
    if "name" in df.columns or not first or strip_extension(first) == first:
        return df
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", header=None)
    raw.columns = ["name", "sentence", *[f"column{i}" for i in range(2, raw.shape[1])]][: raw.shape[1]]
    return raw


def _read_csv(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{what} file {path} not found")
    df = _load_csv(path)
    if required == ["name"]:  # a name list may come without a header line
        df = _headerless(df, path)
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


#: what the organisers' files look like, added to the error for a list that is missing
_HINTS = {
    ("mer2024", "train"): "MER2024 ships label-disdim.csv (name,discrete,valence); set data.label_file to it",
    ("mer2024", "test"): (
        "MER2024 ships no test list: the test set is hidden in the unlabelled videos with a candidate list "
        "`name,discrete` (placeholder labels, one row per candidate); set data.test_file to it"
    ),
    ("mer2024", "unlabeled"): (
        "a pool list is a CSV with a name column or one name per line (the unlabelled videos); "
        "set data.pool_file to it, or leave the key out to train without a pool"
    ),
    ("meiju", "train"): (
        "MEIJU ships Training_files.txt (lines `<file.mp4> <emotion> <intent>`) or a CSV with FileName "
        "(or name), emotion, intent; set data.label_file to it"
    ),
    ("meiju", "test"): (
        "MEIJU ships Testing_files.txt (one `<file.mp4>` per line) or a CSV such as English_Testing_files.csv "
        "with a FileName column; set data.test_file to it"
    ),
    ("meiju", "unlabeled"): (
        "Track 1's pool is NoAnnotation/transcription.csv (name,sentence) or a list of one file per line; "
        "set data.pool_file to it, or leave the key out to train without a pool"
    ),
}
_KEYS = {"train": "data.label_file", "test": "data.test_file", "unlabeled": "data.pool_file"}


def _list_path(
    root: Path, configured: str | None, defaults: Sequence[str], split: str, layout: str, *, required: bool = True
) -> Path | None:
    """The list file of ``split``: the configured one (which must exist) or the first default
    found; None for an optional list that is absent. Errors name the key to set and what the
    organisers' file looks like."""
    key, hint = _KEYS.get(split, "data.root"), _HINTS.get((layout, split), "")
    if configured:
        path = root / configured
        if not path.is_file():
            raise DataError(f"{key}: {path} not found; {hint}")
        return path
    for name in defaults:
        if (root / name).is_file():
            return root / name
    if required:
        raise DataError(f"{key}: not set and none of {list(defaults)} found in {root}; {hint}")
    return None


def read_mer2024(
    root: Path,
    *,
    targets: Sequence[str],
    label_file: str | None = None,
    test_file: str | None = None,
    pool_file: str | None = None,
    group_by: str | None = None,
) -> pd.DataFrame:
    """MER2024: ``label-disdim.csv`` (name, discrete[, valence]), a test name list (the
    organisers' candidate list ``name,discrete`` works: its placeholder labels are ignored)
    and an optional pool list.

    Test names listed in the pool are kept as test rows only (MER2024 hides the
    test set inside the unlabelled pool).
    """
    label_path = _list_path(root, label_file, ["label-disdim.csv", "label-train.csv"], "train", "mer2024")
    labels = _read_csv(label_path, ["name", *targets], "label")
    frames = [_table(labels, "train", targets, group_by, label_path)]
    test_path = _list_path(
        root, test_file, ["test-names.csv", "test-names.txt", "test.csv", "candidate-names.csv"], "test", "mer2024"
    )
    test = _name_list(test_path, "test name list")
    frames.append(_table(test, "test", targets, group_by, test_path, labelled=False))
    pool_path = _list_path(root, pool_file, ["pool-names.csv", "pool-names.txt"], "unlabeled", "mer2024",
                           required=False)
    if pool_path is not None:
        pool = _name_list(pool_path, "pool name list")
        pool = pool[~pool["name"].isin(set(test["name"]) | set(labels["name"]))]
        frames.append(_table(pool, "unlabeled", targets, group_by, pool_path, labelled=False))
    return pd.concat(frames, ignore_index=True)


def _table(
    df: pd.DataFrame,
    split: str,
    targets: Sequence[str],
    group_by: str | None,
    source: Path,
    labelled: bool = True,
    text: str | None = None,
) -> pd.DataFrame:
    out = pd.DataFrame({"name": df["name"].astype(str), "split": split})
    for t in targets:
        out[t] = _blank_to_none(df[t]).values if (labelled and t in df.columns) else None
    if text is not None:
        out[RAW_TEXT] = _blank_to_none(df[text]).values
    if group_by:
        if group_by in df.columns:
            out["group"] = df[group_by].astype(str).values
        elif labelled:
            raise DataError(f"{source}: data.group_by column {group_by!r} not found; found {list(df.columns)}")
        else:
            out["group"] = None
    return out


def _meiju_txt(path: Path, split: str, targets: Sequence[str]) -> pd.DataFrame:
    """A MEIJU text list: lines ``<file.ext> <emotion> <intent>`` (labelled splits) or ``<file.ext>``."""
    labelled = split in ("train", "dev")
    rows = []
    for lineno, line in _read_lines(path):
        parts = line.split()
        if labelled and len(parts) < 1 + len(targets):
            raise DataError(
                f"{path}, line {lineno}: expected '<file> {' '.join('<' + t + '>' for t in targets)}', got {line!r}"
            )
        name = check_name(strip_extension(parts[0]), f"{path}, line {lineno}")
        row = {"name": name, "split": split}
        for i, t in enumerate(targets):
            row[t] = parts[1 + i] if labelled and len(parts) > 1 + i else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["name", "split", *targets])


def _meiju_list(path: Path, split: str, targets: Sequence[str], text_column: str | None = None) -> pd.DataFrame:
    """Any MEIJU list, by its suffix: a CSV (FileName or name column, optional sentence (or
    ``text_column``, the rows' text), emotion, intent) or a text list (:func:`_meiju_txt`)."""
    if path.suffix.lower() != ".csv":
        return _meiju_txt(path, split, targets)
    labelled = split in ("train", "dev")
    df = _read_csv_any_name(path, targets if labelled else (), split)
    return _table(df, split, targets, None, path, labelled=labelled, text=_column(df, text_column or "sentence"))


def _column(df: pd.DataFrame, wanted: str) -> str | None:
    """The column of ``df`` named ``wanted``, matched case-insensitively (None when absent)."""
    lower = {str(c).lower(): c for c in df.columns}
    return wanted if wanted in df.columns else lower.get(wanted.lower())


#: where the meiju layout looks for each list, in order, relative to ``data.root``
#: (Track 1 keeps the labelled lists in ``Annotation/`` and the pool in ``NoAnnotation/``)
MEIJU_LISTS = {
    "train": ["Training_files.txt", "Training.csv", "Training_transcription.csv", "train.csv"],
    "dev": ["Validation_files.txt", "Validation.csv", "Validation_transcription.csv", "valid.csv"],
    "test": ["Testing_files.txt", "English_Testing_files.csv", "Mandarin_Testing_files.csv", "Testing.csv",
             "Testing_transcription.csv", "test.csv"],
    "unlabeled": ["NoAnnotation_files.txt", "NoAnnotation/transcription.csv", "NoAnnotation_transcription.csv"],
}


def _meiju_defaults(split: str) -> list[str]:
    names = MEIJU_LISTS[split]
    inside = [f"Annotation/{n}" for n in names if "/" not in n] if split != "unlabeled" else []
    return [*names, *inside]


def read_meiju(
    root: Path,
    *,
    targets: Sequence[str] = ("emotion", "intent"),
    label_file: str | None = None,
    test_file: str | None = None,
    pool_file: str | None = None,
    text_column: str | None = None,
) -> pd.DataFrame:
    """MEIJU@2025, each list a text file (lines ``<file.ext> <emotion> <intent>``; test and
    pool lines carry only the file) or a CSV (``FileName`` or ``name`` holding ``<name>.mp4``,
    optional ``sentence``, ``emotion``, ``intent``), in any mix.

    ``label_file`` / ``test_file`` / ``pool_file`` (relative to ``root``) override the lists
    found by name (:data:`MEIJU_LISTS`, also under ``Annotation/``); the validation list is
    read when present. Without a pool list the pool is empty (``check`` says so). Pool names
    that another list holds stay in that list only. The CSV lists' ``sentence`` column (or
    ``text_column``) is the rows' text.
    """
    frames = []
    train_path = _list_path(root, label_file, _meiju_defaults("train"), "train", "meiju")
    frames.append(_meiju_list(train_path, "train", targets, text_column))
    dev_path = _list_path(root, None, _meiju_defaults("dev"), "dev", "meiju", required=False)
    if dev_path is not None and dev_path != train_path:
        frames.append(_meiju_list(dev_path, "dev", targets, text_column))
    test_path = _list_path(root, test_file, _meiju_defaults("test"), "test", "meiju")
    frames.append(_meiju_list(test_path, "test", targets, text_column))
    pool_path = _list_path(root, pool_file, _meiju_defaults("unlabeled"), "unlabeled", "meiju", required=False)
    if pool_path is not None:
        pool = _meiju_list(pool_path, "unlabeled", targets, text_column)
        listed = set(pd.concat(frames)["name"])
        frames.append(pool[~pool["name"].isin(listed)])
    return pd.concat(frames, ignore_index=True)


_NAME_COLUMNS = ("FileName", "filename", "file_name", "file", "name")


def _read_csv_any_name(path: Path, targets: Sequence[str], split: str = "train",
                       free_text: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV whose names sit in ``FileName`` (or another of :data:`_NAME_COLUMNS`, any case),
    extension stripped once; target columns matched case-insensitively."""
    df = _load_csv(path, free_text)
    lower = {c.lower(): c for c in df.columns}
    if not any(c.lower() in lower for c in _NAME_COLUMNS):
        df = _headerless(df, path)
        lower = {c.lower(): c for c in df.columns}
    column = next((lower[c.lower()] for c in _NAME_COLUMNS if c.lower() in lower), None)
    if column is None:
        raise DataError(f"{path}: missing a name column (FileName or name); found {list(df.columns)}")
    df["name"] = _clean_names(df[column].tolist(), path, [i + 2 for i in range(len(df))])
    for t in targets:
        if t not in df.columns and t.lower() in lower:
            df[t] = df[lower[t.lower()]]
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} for the {split} rows; found {list(df.columns)}")
    return df


def read_generic(
    root: Path,
    *,
    targets: Sequence[str],
    label_file: str | None = None,
    group_by: str | None = None,
    text_column: str | None = None,
) -> pd.DataFrame:
    """Generic: ``labels.csv`` with ``name``, ``split``, one column per target (blank = unknown)
    and optionally the rows' text (``text_column``, default ``text`` when the file has it)."""
    path = root / (label_file or "labels.csv")
    df = _read_csv(path, ["name", "split", *targets], "label")
    if text_column and text_column not in df.columns:
        raise DataError(f"{path}: data.text_column {text_column!r} not found; found {list(df.columns)}")
    text = text_column or ("text" if "text" in df.columns else None)
    split = df["split"].str.strip().str.lower().replace(_SPLIT_ALIASES)
    bad = sorted(set(split) - _SPLITS)
    if bad:
        row = int(split[split == bad[0]].index[0]) + 2
        raise DataError(f"{path}, row {row}: column split has {bad[0]!r}; expected one of {sorted(_SPLITS)}")
    out = pd.DataFrame({"name": df["name"].astype(str), "split": split.values})
    for t in targets:
        out[t] = _blank_to_none(df[t]).values
    out.loc[out["split"].isin(["test", "unlabeled"]), list(targets)] = None
    if text is not None:
        out[RAW_TEXT] = _blank_to_none(df[text]).values
    if group_by:
        if group_by not in df.columns:
            raise DataError(f"{path}: data.group_by column {group_by!r} not found; found {list(df.columns)}")
        out["group"] = df[group_by].astype(str).values
    return out


def read_layout(layout: str, root: Path, *, targets: Sequence[str], **kwargs) -> pd.DataFrame:  # noqa: ANN003
    """Dispatch to the reader of ``layout`` and check names are unique."""
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder")
    text_column = kwargs.pop("text_column", None)
    if layout == "mer2024":
        table = read_mer2024(root, targets=targets, **kwargs)
    elif layout == "meiju":
        table = read_meiju(
            root, targets=targets, label_file=kwargs.get("label_file"), test_file=kwargs.get("test_file"),
            pool_file=kwargs.get("pool_file"), text_column=text_column,
        )
        if kwargs.get("group_by"):
            raise DataError("data.group_by is not supported by the meiju layout (it has no group column)")
    elif layout == "generic":
        table = read_generic(
            root, targets=targets, label_file=kwargs.get("label_file"), group_by=kwargs.get("group_by"),
            text_column=text_column,
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


def read_text_file(paths: Sequence[Path], column: str | None = None) -> dict[str, str | None]:
    """Name -> text from transcript CSVs (``data.text_file``): a name column (``FileName`` or
    ``name``, one media extension stripped) and the text in ``column`` or else the first of
    :data:`~mer_ensemble.data.raw.TEXT_COLUMNS` present (``text``, ``sentence``, ``english``,
    ``chinese``; any case). The first row of a name wins."""
    texts: dict[str, str | None] = {}
    for path in paths:
        if not path.is_file():
            raise DataError(f"data.text_file: {path} not found; expected a CSV with a name column and a text column")
        df = _read_csv_any_name(path, (), free_text=[column] if column else ())
        wanted_columns = [column] if column else list(TEXT_COLUMNS)
        found = next((c for c in (_column(df, n) for n in wanted_columns) if c is not None), None)
        if found is None:
            wanted = repr(column) if column else f"any of {list(TEXT_COLUMNS)}"
            raise DataError(f"{path}: no text column {wanted} (data.text_column); found {list(df.columns)}")
        for name, text in zip(df["name"], _blank_to_none(df[found]), strict=True):
            texts.setdefault(name, text)
    return texts
