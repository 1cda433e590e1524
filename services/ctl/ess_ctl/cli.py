"""What every command group shares: the parser class, the handler type, exit codes."""

from __future__ import annotations

import argparse
import enum
from typing import NoReturn


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1  # the command ran and something it did failed (named in the output)
    USAGE = 2  # bad arguments: one line on stderr
    CONFIG = 78  # bad ESS_* settings (as for the services)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: `essctl db migrate: error: ...`."""

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.USAGE, f"{self.prog}: error: {message} (try: {self.prog} --help)\n")
