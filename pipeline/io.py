"""Reading raw logs and writing outputs atomically (temporary name, then rename into place)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import CvmError

FORMATS = ("csv", "whitespace", "parquet")


def read_raw(
    path: Path,
    fmt: str,
    columns: list[str],
    header: bool = True,
    names: list[str] | None = None,
    delimiter: str = ",",
) -> pd.DataFrame:
    """Read the ``columns`` of a transaction log as text, plus ``source_row``.

    ``source_row`` is the 1-based line of the row in a text file (the header is line 1) or the
    1-based row number in a Parquet file. Text is kept verbatim, so validation sees exactly what
    the file holds. Raises :class:`CvmError` for a missing or empty file, a malformed line, an
    unknown format or a missing column.
    """
    if fmt not in FORMATS:
        raise CvmError(f"data.format is {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise CvmError(f"{path}: file not found (data.path)")
    if path.stat().st_size == 0:
        raise CvmError(f"{path}: the file is empty; expected a transaction log")
    if fmt == "parquet":
        frame = _read_parquet(path, columns)
        first_line = 1
    else:
        frame = _read_text(path, fmt, columns, header, names, delimiter)
        first_line = 2 if header else 1
    if frame.empty:
        raise CvmError(f"{path}: no data rows; expected at least one transaction")
    frame.insert(0, "source_row", np.arange(first_line, first_line + len(frame), dtype="int64"))
    return frame


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise CvmError(f"{path}: not a readable Parquet file ({err})") from None
    _check_columns(path, columns, schema.names)
    return pq.read_table(path, columns=columns).to_pandas()


def _read_text(
    path: Path, fmt: str, columns: list[str], header: bool, names: list[str] | None, delimiter: str
) -> pd.DataFrame:
    if not header and not names:
        raise CvmError(f"{path}: data.header is false, so data.names must list the columns")
    sep = r"\s+" if fmt == "whitespace" else delimiter
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            names=None if header else names,
            dtype=str,
            keep_default_na=False,
            na_values=[],
            skip_blank_lines=False,
            on_bad_lines="error",
        )
    except pd.errors.EmptyDataError:
        raise CvmError(f"{path}: the file is empty; expected a transaction log") from None
    except pd.errors.ParserError as err:
        raise CvmError(f"{path}: malformed {fmt} file: {err}") from None
    except UnicodeDecodeError as err:
        raise CvmError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    _check_columns(path, columns, list(frame.columns))
    return frame[columns]


def _check_columns(path: Path, wanted: list[str], found: list[str]) -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        raise CvmError(
            f"{path}: missing column(s) {', '.join(missing)} named in data.mapping; "
            f"the file has {', '.join(map(str, found))}"
        )


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds."""
    with _pending(path) as tmp_path:
        yield tmp_path
        os.replace(tmp_path, path)


@contextmanager
def _pending(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, removed on exit unless it was renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` and move the result to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_parquet(frame: pd.DataFrame | pa.Table, path: Path) -> None:
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_json(obj: object, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def content_id(directory: Path) -> str:
    """A short hash of the files in ``directory``: identifies a fitted model in the scored table."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()[:12]


def read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise CvmError(f"{path}: not found; run the stage that produces it first")
    return pq.read_table(path).to_pandas()


def write_netcdf(tree, path: Path) -> None:
    """An ArviZ data tree as netCDF."""
    write_atomic(path, lambda tmp: tree.to_netcdf(tmp))


def read_netcdf(path: Path):
    import xarray as xr

    if not path.is_file():
        raise CvmError(f"{path}: not found; run the fit_clv stage first")
    return xr.load_datatree(path)


def write_table(table: pd.DataFrame, schema: dict, base: Path) -> None:
    """``base``.parquet, .csv and .schema.json, all or nothing.

    All three are written to temporary names first and renamed only once each is complete, so
    an interrupted export leaves the previous table in place.
    """
    targets = {
        base.with_suffix(".parquet"): lambda tmp: table.to_parquet(tmp, index=False),
        base.with_suffix(".csv"): lambda tmp: table.to_csv(tmp, index=False),
        base.with_suffix(".schema.json"): lambda tmp: tmp.write_text(
            json.dumps(schema, indent=2) + "\n"
        ),
    }
    with ExitStack() as stack:
        temps = {path: stack.enter_context(_pending(path)) for path in targets}
        for path, write in targets.items():
            write(temps[path])
        for path, tmp in temps.items():
            os.replace(tmp, path)
