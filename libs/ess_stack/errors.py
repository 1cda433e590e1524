"""Errors of the stack tool; each names the component and where to look."""

from __future__ import annotations

from pathlib import Path


class StackError(Exception):
    def __init__(self, component: str, problem: str, log_file: Path | None = None) -> None:
        where = f" (log: {log_file})" if log_file else ""
        super().__init__(f"{component}: {problem}{where}")
        self.component = component
