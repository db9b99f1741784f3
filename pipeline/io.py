"""Reading raw logs and writing outputs atomically (temporary name, then rename into place)."""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import CvmError, first_line
from pipeline.progress import Progress

FORMATS = ("csv", "whitespace", "parquet")
_BLOCK = 1 << 22
_SHOWN_COLUMNS = 20


def raw_table(
    con,
    path: Path,
    fmt: str,
    columns: list[str],
    header: bool = True,
    names: list[str] | None = None,
    delimiter: str = ",",
) -> tuple[Any, int]:
    """The ``columns`` of a transaction log as an engine table, plus ``source_row``; its rows.

    The engine reads the file itself (nothing is loaded into Python): text files line by line,
    with every field kept as verbatim text; Parquet files with their own types. ``source_row``
    is the 1-based line of the row in a text file (the header is line 1; a csv record whose
    quoted field spans lines is one row, at its first line) or the 1-based row number in a
    Parquet file. A text log's rows also say why a line could not be read into fields
    (``line_reason``: ``invalid_utf8``, ``malformed_line`` or ``blank_line``, with
    ``line_detail``), for the quarantine. Raises :class:`CvmError` for a missing or empty file,
    one that does not look like a transaction log (mostly lines that are not text or do not
    fit the columns, or none of the mapped columns in its header), an unknown format or a
    missing column; the message names the file but quotes none of its lines. It reads the file
    once to check, so the table it returns is safe to use.
    """
    from pipeline import engine

    if fmt not in FORMATS:
        raise CvmError(f"data.format is {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise CvmError(f"{path}: file not found (data.path)")
    check_readable(path)
    if path.stat().st_size == 0:
        raise CvmError(f"{path}: the file is empty; expected a transaction log")
    if fmt == "parquet":
        _check_columns(path, columns, _parquet_columns(path))
        rows = pq.read_metadata(path).num_rows
        if rows == 0:
            raise CvmError(f"{path}: no data rows; expected at least one transaction")
        return engine.parquet_rows(con, path, columns), rows
    return _text_table(con, path, fmt, columns, header, names, delimiter)


def _parquet_columns(path: Path) -> list[str]:
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as err:
        raise CvmError(f"{path}: not a readable Parquet file ({err})") from None


def _text_table(
    con, path: Path, fmt: str, columns: list[str], header: bool, names: list[str] | None, delim
):
    from features.parsing import check_delimiter, join_quoted_lines, split_fields
    from pipeline import engine

    if not header and not names:
        raise CvmError(f"{path}: data.header is false, so data.names must list the columns")
    if fmt == "csv" and (problem := check_delimiter(delim)):
        raise CvmError(problem)
    scan = _scan_text(path, fmt, header, Progress(f"{path.name}: UTF-8 check", "MB"))
    if header:
        names = _header_names(scan.first, fmt, delim)
    _check_columns(path, columns, list(names))
    if scan.first_lone_cr is not None:
        _check_lone_cr(path, scan)
    lines = engine.text_lines(con, path, scan.bad > 0, lf_only=scan.first_lone_cr is not None)
    if header:
        lines = lines.filter(lines.source_row > 1)
    if fmt == "csv" and scan.odd_quotes:
        lines = join_quoted_lines(lines, delim, engine.dialect(con))
    fields = split_fields(lines, fmt, list(names), delim, engine.dialect(con))
    fields = fields.rename(line_reason="reason", line_detail="detail")
    rows = _count_rows(con, path, fmt, fields, columns)
    return fields.select("source_row", *columns, "line_reason", "line_detail"), rows


def _count_rows(con, path: Path, fmt: str, fields, columns: list[str]) -> int:
    """The rows of ``fields``, read once by the engine; refuses a file whose rows are mostly
    lines that are not text, have too many fields or too few for the mapped ``columns``: that
    is not a transaction log."""
    import ibis

    from pipeline import engine

    short = ibis.or_(*[fields[c].isnull() for c in columns]) & fields.line_reason.isnull()
    unfit = fields.line_reason.isin(["invalid_utf8", "malformed_line"]).fill_null(False) | short
    check = fields.aggregate(rows=fields.count(), unfit=ibis.ifelse(unfit, 1, 0).sum())
    try:
        with engine.query_progress(con, f"{path.name}: parse", _megabytes(path), "MB"):
            found = check.execute().iloc[0]
    except Exception as err:  # the engine could not read the file
        raise CvmError(f"{path}: cannot read the {fmt} file: {first_line(err)}") from None
    rows, unfit = int(found["rows"]), int(0 if pd.isna(found["unfit"]) else found["unfit"])
    if rows == 0:
        raise CvmError(f"{path}: no data rows; expected at least one transaction")
    if unfit * 2 > rows:
        raise CvmError(
            f"{path}: does not look like a {fmt} transaction log with the columns of "
            f"data.mapping: {unfit} of its {rows} rows are not UTF-8 text or do not split "
            "into the mapped columns (check data.format, data.delimiter and data.path)"
        )
    return rows


def _megabytes(path: Path) -> int:
    """The file's size in whole MB, at least 1: the unit of the progress of reading it."""
    return max(path.stat().st_size >> 20, 1)


@dataclass
class _Scan:
    """What one pass over a text file's bytes found: its first line, its lines, how many of
    them are not UTF-8 (and the first such), and whether a line has an odd number of quotes."""

    first: str | None = None
    lines: int = 0
    bad: int = 0
    first_bad: int | None = None
    odd_quotes: bool = False
    first_ok: bool = True
    first_lone_cr: int | None = None  # the first line holding a CR not followed by LF

    def read(self, chunk: bytes) -> None:
        """Take in ``chunk``, the next whole lines of the file (the last may lack its newline)."""
        if self.first is None and self.lines == 0:
            head = chunk.split(b"\n", 1)[0]
            self.first = head.decode("utf-8", "replace").removeprefix("\ufeff").rstrip("\r")
            self.first_ok = _utf8(head)
        try:
            codecs.utf_8_decode(chunk, "strict", True)
        except UnicodeDecodeError:
            self._count_bad(chunk)
        if self.first_lone_cr is None and (cr := _LONE_CR.search(chunk)):
            self.first_lone_cr = self.lines + chunk.count(b"\n", 0, cr.start()) + 1
        if not self.odd_quotes and b'"' in chunk:
            self.odd_quotes = any(line.count(b'"') % 2 for line in chunk.split(b"\n"))
        self.lines += chunk.count(b"\n") + (not chunk.endswith(b"\n"))

    def _count_bad(self, chunk: bytes) -> None:
        """Count the lines of ``chunk`` that are not UTF-8; each error is decoded past once."""
        view, pos = memoryview(chunk), 0
        while True:
            try:
                codecs.utf_8_decode(view[pos:], "strict", True)
                return
            except UnicodeDecodeError as err:
                at = pos + err.start
                self.bad += 1
                if self.first_bad is None:
                    self.first_bad = self.lines + chunk.count(b"\n", 0, at) + 1
                end = chunk.find(b"\n", at)
                if end < 0:
                    return
                pos = end + 1

    def mostly_bad(self) -> bool:
        return self.bad * 2 > self.lines


_LONE_CR = re.compile(rb"\r(?!\n)")
# a log whose lines end with LF or CRLF but that holds a CR alone (inside a quoted field, as
# spreadsheets write a line break in a cell) is split at LF only, read whole into memory
MAX_LONE_CR_BYTES = 1 << 30


def _check_lone_cr(path: Path, scan: _Scan) -> None:
    if scan.bad or path.stat().st_size > MAX_LONE_CR_BYTES:
        raise CvmError(
            f"{path}: line {scan.first_lone_cr} holds a carriage return (CR) that ends no line; "
            f"such a file is read only when it is UTF-8 and at most {MAX_LONE_CR_BYTES >> 30} "
            "GB: replace the CRs inside its fields, or split the file"
        )


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _scan_text(path: Path, fmt: str, header: bool, progress: Progress) -> _Scan:
    """Read the file once in blocks: its first line, its lines that are not UTF-8, and whether
    a line has an odd number of quotes. Refuses a file whose lines are mostly not UTF-8 (judged
    on the first block, then on the whole file), a header that is not, or a line longer than a
    block: a binary file, not a text log. Memory stays at a block or two."""
    megabytes, scan, carry, offset = _megabytes(path), _Scan(), b"", 0
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if not cut and len(data) > _BLOCK:
                raise CvmError(
                    f"{path}: line {scan.lines + 1} is longer than {_BLOCK >> 20} MB; "
                    f"expected a {fmt} transaction log"
                )
            if cut:
                scan.read(data[:cut])
            carry = data[cut:]
            if offset == 0:  # a binary file stops here, not after a pass over all of it
                _refuse_binary(path, fmt, header, scan)
            offset += len(block)
            progress(min(offset >> 20, megabytes - 1), megabytes)
    if carry:
        scan.read(carry)
    _refuse_binary(path, fmt, header, scan)
    progress(megabytes, megabytes)
    return scan


def _refuse_binary(path: Path, fmt: str, header: bool, scan: _Scan) -> None:
    if scan.lines and scan.mostly_bad():
        raise CvmError(
            f"{path}: not a text file: {scan.bad} of the {scan.lines} lines read are not "
            f"UTF-8 text; expected a {fmt} transaction log"
        )
    if header and scan.first is not None and not scan.first_ok:
        raise CvmError(f"{path}: the header (line 1) is not UTF-8 text; expected column names")


def _header_names(first: str, fmt: str, delimiter: str) -> list[str]:
    """The column names in the header line, split as the data lines are."""
    if fmt == "whitespace":
        return re.findall("[^ \t]+", first)
    import csv

    return next(csv.reader([first], delimiter=delimiter), [])


def _check_columns(path: Path, wanted: list[str], found: list[str]) -> None:
    """Refuse a file without the mapped columns. The columns it has are named only when some
    mapped column is among them: otherwise its first line may be anything, and is not quoted."""
    missing = [c for c in wanted if c not in found]
    if not missing:
        return
    if len(missing) == len(wanted):
        raise CvmError(
            f"{path}: does not look like a transaction log with the columns data.mapping "
            f"names ({', '.join(wanted)}): its header has none of them"
        )
    # only what looks like a column name is quoted: a crafted mapping may match the first line
    # of a file that is no log (``/etc/passwd`` read as one column), whose text stays unsaid
    names = [str(c) for c in found if _COLUMN_NAME.fullmatch(str(c))]
    shown = ", ".join(names[:_SHOWN_COLUMNS]) or "no column name"
    hidden = len(found) - min(len(names), _SHOWN_COLUMNS)
    more = f" and {hidden} more not shown" if hidden else ""
    raise CvmError(
        f"{path}: missing column(s) {', '.join(missing)} named in data.mapping; "
        f"the file has {shown}{more}"
    )


_COLUMN_NAME = re.compile(r"\w[\w .()#%-]{0,63}")


def check_readable(path: Path) -> None:
    """Refuse a log its reader may read only by privilege (root reading another user's private
    file): its permission bits must let the invoking user read it, as owner, group or other."""
    info = path.stat()
    if os.getuid() == info.st_uid:
        allowed = info.st_mode & stat.S_IRUSR
    elif info.st_gid in {os.getgid(), *os.getgroups()}:
        allowed = info.st_mode & stat.S_IRGRP
    else:
        allowed = info.st_mode & stat.S_IROTH
    if not allowed:
        raise CvmError(
            f"{path}: its permissions ({stat.filemode(info.st_mode)}, owner uid {info.st_uid}, "
            f"group gid {info.st_gid}) do not let this user (uid {os.getuid()}) read it; cvm "
            "reads only a log its user may read by the file's permissions"
        )


def restrict_like(paths: Iterable[Path], source: Path) -> None:
    """Give ``paths`` (copies of ``source``'s rows: the clean log, the quarantine) no more
    access than ``source`` has: a private log does not leave world-readable copies."""
    mode = source.stat().st_mode & 0o666
    for path in paths:
        os.chmod(path, path.stat().st_mode & mode)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds."""
    with _pending(path) as tmp_path:
        yield tmp_path
        os.replace(tmp_path, path)


@contextmanager
def _pending(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, removed on exit unless it was renamed (or by the next
    run's recovery, if this process is killed)."""
    from pipeline import outputs

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = outputs.temporary(path)
    os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
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


def concat_parquet(parts: list[Path], path: Path) -> int:
    """The Parquet files ``parts`` one after the other as the file ``path``; returns its rows.

    Copies one row group at a time, so memory stays at a row group whatever the sizes.
    """
    schema = pq.read_schema(parts[0]).remove_metadata()
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                table = source.read_row_group(group).replace_schema_metadata(None)
                writer.write_table(table if table.schema == schema else table.cast(schema))
                rows += table.num_rows
    return rows


def parquet_row_count(path: Path) -> int:
    """The number of rows of a Parquet file, from its footer."""
    return pq.read_metadata(path).num_rows


def write_json(obj: object, path: Path, atomic: bool = True) -> None:
    """``obj`` as JSON; ``atomic=False`` writes ``path`` in place (a temporary path already)."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    if atomic:
        write_atomic(path, lambda tmp: tmp.write_text(text))
    else:
        path.write_text(text)


def write_report(report: dict, path: Path, metrics: Path) -> None:
    """A stage's ``report`` at ``path`` and its numbers alone at ``metrics`` (both temporary
    paths already): the file DVC shows and compares as metrics, without the dates, texts,
    hashes and lists that would read as metrics there."""
    write_json(report, path, atomic=False)
    write_json(numbers_only(report) or {}, metrics, atomic=False)


def numbers_only(obj):
    """``obj`` with only its numbers (a flag as 0 or 1), the mappings left empty dropped;
    ``None`` when nothing is left."""
    if isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, int | float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        kept = {k: v for k, v in ((k, numbers_only(v)) for k, v in obj.items()) if v is not None}
        return kept or None
    return None


def _finite(obj):
    """``obj`` with NaN and infinite floats as ``None``: JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


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


def read_json(path: Path) -> dict:
    """A JSON file another stage wrote; a :class:`CvmError` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CvmError(f"{path}: not found; run the stage that produces it first") from None
    except (OSError, ValueError) as err:
        raise CvmError(
            f"{path}: unreadable ({err}); run the stage that produces it again"
        ) from None


def read_parquet(path: Path) -> pd.DataFrame:
    """A table another stage wrote; a :class:`CvmError` when it is missing or unreadable."""
    if not path.is_file():
        raise CvmError(f"{path}: not found; run the stage that produces it first")
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as err:
        raise CvmError(
            f"{path}: unreadable ({err}); run the stage that produces it again"
        ) from None


def write_table_files(
    table: pd.DataFrame,
    schema: dict,
    parquet: Path,
    csv: Path,
    schema_path: Path,
    guard_formulas: bool = True,
    segments: pd.DataFrame | None = None,
    segment_paths: tuple[Path, Path] | None = None,
) -> None:
    """The scored table as Parquet, CSV and its JSON schema, each to the path given, and its
    ``segments`` summary as Parquet and CSV to ``segment_paths`` when given. With
    ``guard_formulas`` the CSVs' text cells that a spreadsheet would run as a formula are
    written as text (:func:`models.scoring.spreadsheet_safe`); the Parquet files keep the
    values as they are."""
    from models.scoring import spreadsheet_safe

    frames = [(table, parquet, csv)]
    if segments is not None and segment_paths is not None:
        frames.append((segments, *segment_paths))
    for frame, parquet_path, csv_path in frames:
        frame.to_parquet(parquet_path, index=False)
        (spreadsheet_safe(frame) if guard_formulas else frame).to_csv(csv_path, index=False)
    schema_path.write_text(json.dumps(schema, indent=2) + "\n")
