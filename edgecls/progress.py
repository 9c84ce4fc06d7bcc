"""Progress bars (rich) that stay quiet when stdout is not a terminal."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def make_progress(enabled: bool = True):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console()  # stdout: log lines printed meanwhile are placed above the bar (redirect_stdout)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not (enabled and console.is_terminal),
    )


def track(items: Iterable[T], total: int, desc: str) -> Iterator[T]:
    with make_progress() as progress:
        task = progress.add_task(desc, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)
