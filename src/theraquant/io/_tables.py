"""Reading tables (CSV, TSV, Parquet) with one clear error for each way a file can be unusable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import TheraquantError

__all__ = ["read_table"]


def read_table(path: str | Path, *, argument: str = "table") -> Any:
    """Read a table by its suffix: ``.csv`` / ``.txt`` (comma), ``.tsv`` (tab), ``.parquet`` / ``.pq``.

    CSV text must be UTF-8 (a byte-order mark is accepted). A missing, empty, non-UTF-8 or
    malformed file, a header without rows, or an unknown suffix is a
    :class:`~theraquant.errors.TheraquantError` naming the file and the fix.

    Parameters
    ----------
    path : str or Path
        The table.
    argument : str
        How the file is named in messages (``"TABLE"``, ``"--table"``, ``"table"``).

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("lesion,suv\\n1,3.5\\n")
    >>> read_table(p).to_dict("list")
    {'lesion': [1], 'suv': [3.5]}
    """
    import pandas as pd

    path = Path(path)
    who = f"{argument} {path}" if argument.startswith("-") else str(path)
    if path.is_dir():
        raise TheraquantError(f"{who} is a folder; give a table file (.csv, .tsv or .parquet)")
    if not path.is_file():
        raise TheraquantError(f"{who}: no such file; give a table (.csv, .tsv or .parquet)")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises its own types for corrupt files
            raise TheraquantError(f"{who}: not a readable Parquet file ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}); write it again") from None
    elif suffix in (".csv", ".txt", ".tsv"):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TheraquantError(f"{who}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}); "
                                  "save it as UTF-8 CSV (in Excel: 'CSV UTF-8')") from None
        if not text.strip():
            raise TheraquantError(f"{who}: the file is empty; give a table with a header row and one row per "
                                  "lesion")
        import io

        try:
            df = pd.read_csv(io.StringIO(text), sep="\t" if suffix == ".tsv" else ",")
        except pd.errors.ParserError as exc:
            raise TheraquantError(f"{who}: malformed {'TSV' if suffix == '.tsv' else 'CSV'} "
                                  f"({str(exc).strip().splitlines()[-1]}); fix the row or its quoting") from None
        except pd.errors.EmptyDataError:
            raise TheraquantError(f"{who}: the file is empty; give a table with a header row") from None
    else:
        raise TheraquantError(f"{who}: unsupported table extension {suffix or '(none)'!r}; give a .csv, .tsv or "
                              ".parquet file")
    if len(df) == 0:
        raise TheraquantError(f"{who}: the table has a header ({', '.join(map(str, df.columns[:6]))}) but no "
                              "rows")
    return df
