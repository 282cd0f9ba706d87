"""A report on the terminal (a table, then each finding with its fix) or as JSON for scripts.

Every piece of text from outside (claims, env values, server answers) goes into ``rich.Text``
objects, never into markup strings: a claim such as ``[red]`` or an escape sequence must print
as itself. Colour follows the terminal (``rich``'s detection, ``NO_COLOR``) unless forced.
"""

from __future__ import annotations

import json
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sessionkeeper.doctor.findings import Finding, Report, Severity, Status

_STATUS_STYLE = {
    Status.OK: "green",
    Status.ERROR: "bold red",
    Status.WARNING: "yellow",
    Status.INFO: "cyan",
    Status.SKIPPED: "dim",
}
_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def to_json(report: Report) -> str:
    """The stable ``--json`` document (schema ``sessionkeeper.doctor/1``, docs/doctor.md)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


def console(stream: TextIO, color: bool | None) -> Console:
    """``color``: True forces colour, False removes it, None lets the terminal decide."""
    if color is None:
        return Console(file=stream, highlight=False, soft_wrap=False)
    return Console(
        file=stream,
        highlight=False,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
    )


def _summary(report: Report) -> Text:
    problems = report.problems
    if not problems:
        return Text("No problems found.", style="bold green")
    errors = sum(1 for f in problems if f.severity is Severity.ERROR)
    warnings = len(problems) - errors
    parts = [f"{errors} error{'s' if errors != 1 else ''}"] if errors else []
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    noun = "problem" if len(problems) == 1 else "problems"
    return Text(f"{len(problems)} {noun} found ({', '.join(parts)}).", style="bold red")


def _finding(item: Finding) -> Table:
    """``error  code`` then the message and the fix, indented so wrapped lines stay aligned."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(
        Text(item.severity.value, style=_SEVERITY_STYLE[item.severity]),
        Text(item.code, style="bold"),
    )
    grid.add_row(Text(""), Text(item.message))
    grid.add_row(Text("fix", style="bold"), Text(item.hint))
    return grid


def render_text(report: Report, out: Console) -> None:
    title = Text()
    title.append(f"sessionkeeper doctor {report.command}", style="bold")
    title.append(f"  {report.subject}")
    out.print(title)
    if report.facts:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 2))
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("value", overflow="fold")
        for fact in report.facts:
            table.add_row(
                Text(fact.name),
                Text(fact.status.value, style=_STATUS_STYLE[fact.status]),
                Text(fact.value),
            )
        out.print(table)
    for item in report.findings:
        out.print()
        out.print(_finding(item))
    out.print()
    out.print(_summary(report))
