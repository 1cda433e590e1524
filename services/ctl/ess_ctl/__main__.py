"""`essctl GROUP COMMAND ...`: each command group lives in its own module and registers here."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ess_common.logs import configure_logging
from ess_ctl import archive, cache, db, dlq, fleet, index, loss, offsets, replay, status, sync
from ess_ctl.cli import Parser

# each module has `register(subparsers)`; its commands set `handler`
GROUPS = (db, loss, replay, sync, offsets, cache, index, fleet, status, dlq, archive)


def build_parser() -> Parser:
    parser = Parser(prog="essctl", description="Operate the ESS telemetry backbone.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for group in GROUPS:
        group.register(groups)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("DEBUG" if args.verbose else "INFO", "text")
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    code: int = args.handler(args)
    return code


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
