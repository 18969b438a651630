"""Excel (xlsx) <-> Ion with Kestra's properties (kestra-io/plugin-serdes excel.ExcelToIon,
IonToExcel), on openpyxl's streaming modes (read-only and write-only workbooks).

ExcelToIon writes one Ion file per sheet (`uris`: sheet title -> URI); IonToExcel takes
one file (`from` a URI, the sheet named `sheetsTitle`) or several (`from` a map of sheet
title -> URI).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.ion import IonError, dumps, iter_values
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic


class ExcelToIon(Task):
    """Kestra's ExcelToIon."""

    types = (
        "io.kestra.plugin.serdes.excel.ExcelToIon",
        "io.kestra.plugin.serdes.excel.ExcelReader",
    )

    from_: Annotated[str, Dynamic] = Field(alias="from")
    sheets_title: Annotated[list[str] | None, Dynamic] = None
    header: bool = True
    skip_empty_rows: bool = False
    skip_rows: int = Field(default=0, ge=0)
    charset: str = "UTF-8"
    date_time_render: Literal["SERIAL_NUMBER", "FORMATTED_STRING", "UNFORMATTED_VALUE"] = (
        "UNFORMATTED_VALUE"
    )
    value_render: Literal["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"] = "UNFORMATTED_VALUE"

    async def run(self, ctx: RunContext) -> Output:
        source = await ctx.file_path(self.from_)
        directory = await ctx.working_dir()
        try:
            written = await asyncio.to_thread(self._convert, source, directory)
        except (ValueError, OSError, KeyError) as exc:
            raise TaskFailed(f"{self.from_}: {exc}", non_retryable=True) from None
        uris = {title: await ctx.put_file(path) for title, (path, _) in written.items()}
        ctx.metric("records", "counter", sum(count for _, count in written.values()))
        return {"uris": uris}

    def _convert(self, source: Path, directory: Path) -> dict[str, tuple[Path, int]]:
        import openpyxl

        book = openpyxl.load_workbook(
            source, read_only=True, data_only=self.value_render != "FORMULA"
        )
        out: dict[str, tuple[Path, int]] = {}
        try:
            for index, sheet in enumerate(book.worksheets):
                if self.sheets_title and sheet.title not in self.sheets_title:
                    continue
                path = directory / f"{self.id}-{index}.ion"
                count, names, skipped = 0, None, 0
                with path.open("w", encoding="utf-8") as text:
                    for row in sheet.iter_rows(values_only=True):
                        if self.skip_empty_rows and all(v is None for v in row):
                            continue
                        if skipped < self.skip_rows:
                            skipped += 1
                            continue
                        if self.header and names is None:
                            names = [str(v) if v is not None else "" for v in row]
                            continue
                        values = list(row)
                        record: Any = (
                            dict(
                                zip(
                                    names,
                                    values + [None] * (len(names) - len(values)),
                                    strict=False,
                                )
                            )
                            if names is not None
                            else values
                        )
                        text.write(dumps(record) + "\n")
                        count += 1
                out[sheet.title] = (path, count)
        finally:
            book.close()
        return out


class IonToExcel(Task):
    """Kestra's IonToExcel."""

    types = (
        "io.kestra.plugin.serdes.excel.IonToExcel",
        "io.kestra.plugin.serdes.excel.ExcelWriter",
    )

    from_: Annotated[str | dict[str, str], Dynamic] = Field(alias="from")
    sheets_title: str = "Sheet"
    header: bool = True
    charset: str = "UTF-8"
    styles: bool = True
    auto_size_columns: bool = False

    async def run(self, ctx: RunContext) -> Output:
        sources = self.from_ if isinstance(self.from_, dict) else {self.sheets_title: self.from_}
        paths = {title: await ctx.file_path(uri) for title, uri in sources.items()}
        target = await ctx.working_dir() / f"{self.id}.xlsx"
        try:
            count = await asyncio.to_thread(self._convert, paths, target)
        except (IonError, ValueError) as exc:
            raise TaskFailed(str(exc), non_retryable=True) from None
        ctx.metric("records", "counter", count)
        return {"uri": await ctx.put_file(target)}

    def _convert(self, paths: dict[str, Path], target: Path) -> int:
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        count = 0
        for title, path in paths.items():
            sheet = book.create_sheet(title)
            first = True
            for row in iter_values(path):
                if isinstance(row, dict):
                    if first and self.header:
                        sheet.append(list(row.keys()))
                    values = list(row.values())
                elif isinstance(row, list):
                    values = row
                else:
                    values = [row]
                sheet.append([_cell(v) for v in values])
                first = False
                count += 1
        book.save(target)
        return count


def _cell(value: Any) -> Any:
    from datetime import datetime

    if isinstance(value, dict | list):
        return dumps(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones
    if isinstance(value, bytes):
        return value.hex()
    return value
