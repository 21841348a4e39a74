"""Progress display and step timing for the training commands (rich on a terminal, silent in tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Steps:
    """Times named steps; subclasses show them."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._started(name)
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
            self._finished(name, self.timings[name])

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A step with a progress bar; yields ``advance(n)``."""
        with self.step(description):
            yield lambda n: None

    def note(self, text: str) -> None:
        """A remark worth showing (a shrunk split, a fallback)."""

    def _started(self, name: str) -> None:
        pass

    def _finished(self, name: str, seconds: float) -> None:
        pass


class SilentSteps(Steps):
    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


class RichSteps(Steps):
    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with self.step(description), Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    def note(self, text: str) -> None:
        self.console.print(f"  [yellow]note:[/] {text}")

    def _started(self, name: str) -> None:
        self.console.print(f"[bold cyan]>[/] {name}")

    def _finished(self, name: str, seconds: float) -> None:
        self.console.print(f"  [dim]{name}: {seconds:.1f} s[/]")
