"""What is in a store, as a table for terminals and for Jupyter."""

from __future__ import annotations

import html
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class StoreSummary:
    path: str
    frame: pl.DataFrame  # dataset, tier, conversations, messages, avg_quality
    open_dead_letters: int = 0

    @property
    def conversations(self) -> int:
        return int(self.frame["conversations"].sum() or 0)

    @property
    def messages(self) -> int:
        return int(self.frame["messages"].sum() or 0)

    def _headline(self) -> str:
        line = f"{self.path}: {self.conversations:,} conversations, {self.messages:,} messages"
        if self.open_dead_letters:
            line += f", {self.open_dead_letters:,} invalid records in dead_letters"
        return line

    def __str__(self) -> str:
        rows: list[tuple[str, ...]] = [("dataset", "tier", "conversations", "messages", "avg_quality")]
        for r in self.frame.iter_rows():
            rows.append(tuple("-" if v is None else (f"{v:,}" if isinstance(v, int) else str(v)) for v in r))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [self._headline()]
        for n, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.frame.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{'' if v is None else html.escape(f'{v:,}' if isinstance(v, int) else str(v))}</td>" for v in row) + "</tr>"
            for row in self.frame.iter_rows()
        )
        return (
            f"<p><b>{html.escape(self._headline())}</b></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def __repr__(self) -> str:
        return str(self)
