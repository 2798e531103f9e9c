"""A table on the terminal (rich): best values bold, CIs dim, significant deltas green or red, the
caption below.
"""

from __future__ import annotations

from typing import Any

from molmo_eval.report.model import Paper, Table
from molmo_eval.report.presentation import caption, header, row_cells, row_heads


def render_terminal(table: Table, stream: Any = None, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    t = RichTable(title=title, title_justify="left")
    head = header(table)
    n_heads = len(head) - len(table.columns) - int(table.with_average)
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i < n_heads else "right", no_wrap=True)
    for row in table.rows:
        heads = row_heads(table, row)
        cells: list[Any] = list(heads)
        for ct in row_cells(table, row):
            txt = Text(ct.value, style="bold" if ct.best else "")
            if ct.ci:
                txt.append(f" [{ct.ci}]", style="dim")
            if ct.delta:
                up = ct.delta.startswith("+")
                txt.append(f" {ct.delta}{ct.mark}", style=("green" if up else "red") if ct.mark else "dim")
            cells.append(txt)
        t.add_row(*cells)
    console = Console(file=stream, soft_wrap=False)
    if not console.is_terminal:  # a file or a pipe: as wide as the table needs
        console = Console(file=stream, soft_wrap=False, width=1000)
    console.print(t)
    for line in caption(table):
        console.print(line, style="dim", highlight=False)


def render_terminal_paper(paper: Paper, stream: Any = None) -> None:
    """The findings and the paper's ablation tables."""
    from rich.console import Console

    console = Console(file=stream, soft_wrap=False)
    for title, t in paper.tables:
        render_terminal(t, stream, title)
        console.print()
    console.print("Findings: " + " ".join(paper.findings), highlight=False)
    for n in paper.notes:
        console.print(n, style="dim", highlight=False)
