"""A campaign's manifest read as a stream of rows: CSV with a header row, or JSON Lines.

Columns (fields of a JSON object): ``email`` (required), ``name``, ``cc``
(addresses separated by ``,`` or ``;``; a JSON list too), ``reply_to`` (or
``reply-to``), ``attach`` (paths separated by ``;``, relative to the
manifest; a JSON list too), ``id`` (the row's key; its row number when
absent), ``header:NAME`` (an extra header); every column is also a template
variable. Rows are read one at a time: a manifest of any length is never in
memory.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Row", "ManifestError", "read_manifest", "row_from_mapping"]


class ManifestError(ValueError):
    """A manifest or one of its rows cannot be used (nothing has been sent)."""


@dataclass
class Row:
    """One manifest row, its special columns picked out."""

    number: int                     # 1 for the first data row
    key: str
    email: str
    values: dict[str, str]          # every column, for the template
    name: str | None = None
    cc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    attach: list[str] = field(default_factory=list)   # absolute paths
    headers: dict[str, str] = field(default_factory=dict)


def _split(value: Any, seps: str, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        for sep in seps[1:]:
            value = value.replace(sep, seps[0])
        items = value.split(seps[0])
    else:
        raise ManifestError(f"{where}: expected text or a list, got {type(value).__name__}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ManifestError(f"{where}: expected text, got {type(item).__name__}")
        if item.strip():
            out.append(item.strip())
    return out


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ManifestError(f"{where}: expected text or a number, got {type(value).__name__}")
    return value if isinstance(value, str) else json.dumps(value)


def row_from_mapping(number: int, data: Mapping[str, Any], base: str, where: str) -> Row:
    """A :class:`Row` from one record's columns; ``base`` is the folder ``attach`` paths are relative to."""
    if "email" not in data:
        raise ManifestError(f"{where}: no 'email' column")
    values = {str(k): _text(v, f"{where} column {k!r}") for k, v in data.items()
              if k not in ("cc", "attach")}
    email = values["email"].strip()
    if not email:
        raise ManifestError(f"{where}: the 'email' column is empty")
    key = values.get("id", "").strip() or str(number)
    cc = _split(data.get("cc"), ",;", f"{where} column 'cc'")
    attach = [os.path.normpath(os.path.join(base, p)) for p in _split(data.get("attach"), ";", f"{where} column 'attach'")]
    values["cc"] = ", ".join(cc)
    values["attach"] = ";".join(attach)
    headers = {k[len("header:"):].strip(): v for k, v in values.items() if k.lower().startswith("header:") and v}
    reply_to = values.get("reply_to") or values.get("reply-to") or None
    return Row(number, key, email, values, values.get("name") or None, cc, reply_to, attach, headers)


class Manifest:
    """The rows of a manifest file, read again on each iteration; ``columns`` as its header names them
    (CSV), or None (JSON Lines: each row has its own)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.base = os.path.dirname(self.path)
        self.kind = "jsonl" if self.path.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as handle:
                first = handle.readline()
        except OSError as exc:
            raise ManifestError(f"manifest {path}: {exc.strerror or exc}") from None
        self.columns: list[str] | None = None
        if self.kind == "csv":
            header = next(csv.reader([first]), [])
            self.columns = [c.strip() for c in header]
            if "email" not in self.columns:
                raise ManifestError(f"manifest {path}: no 'email' column in the header row {self.columns}")
            if len(set(self.columns)) != len(self.columns):
                raise ManifestError(f"manifest {path}: a column name appears twice in {self.columns}")

    def __iter__(self) -> Iterator[Row]:
        with open(self.path, encoding="utf-8-sig", newline="") as handle:
            if self.kind == "csv":
                reader = csv.reader(handle)
                next(reader, None)
                width = len(self.columns or ())
                for number, cells in enumerate(reader, 1):
                    if not any(c.strip() for c in cells):
                        continue  # a blank line
                    where = f"{os.path.basename(self.path)} line {reader.line_num}"
                    if len(cells) != width:
                        raise ManifestError(f"{where}: {len(cells)} fields, the header has {width}")
                    yield row_from_mapping(number, dict(zip(self.columns, cells)), self.base, where)
            else:
                number = 0
                for line_no, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    number += 1
                    where = f"{os.path.basename(self.path)} line {line_no}"
                    try:
                        data = json.loads(line)
                    except ValueError as exc:
                        raise ManifestError(f"{where}: not JSON ({exc})") from None
                    if not isinstance(data, dict):
                        raise ManifestError(f"{where}: a row must be a JSON object")
                    yield row_from_mapping(number, data, self.base, where)


def read_manifest(path: str) -> Manifest:
    return Manifest(path)
