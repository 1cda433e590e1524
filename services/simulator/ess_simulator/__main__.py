"""Command line: `python -m ess_simulator run|inventory --config FILE ...`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from ess_common.logs import configure_logging
from ess_simulator.config import ConfigError, FleetConfig, load_config
from ess_simulator.inventory import dump_inventory
from ess_simulator.simulator import Simulator

log = logging.getLogger("ess_simulator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ess_simulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "serve the fleet until SIGINT/SIGTERM"),
        ("inventory", "print the inventory (YAML) of what `run` would serve"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", type=Path, help="fleet file (default: packaged)")
        command.add_argument("--host", help="listen address (default from the file)")
        command.add_argument("--base-port", type=int, help="port of the first site")
        if name == "run":
            command.add_argument("--control-port", type=int, help="HTTP control port")
            command.add_argument("--log-level", default="INFO")
    return parser


def _config(args: argparse.Namespace) -> FleetConfig:
    config = load_config(args.config)
    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("base_port", args.base_port),
            ("control_port", getattr(args, "control_port", None)),
        )
        if value is not None
    }
    return FleetConfig.model_validate({**config.model_dump(), **overrides})


async def _serve(config: FleetConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Simulator(config):
        await stop.wait()
        log.info("stop signal received, shutting down")


def _print_inventory(config: FleetConfig) -> None:
    if not config.base_port:
        raise ConfigError("inventory needs a fixed --base-port (not 0)")
    sys.stdout.write(dump_inventory(Simulator(config).inventory()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]  # `python -m ess_simulator` alone serves the fleet
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "inventory":
            _print_inventory(config)
            return 0
        configure_logging(args.log_level)
        logging.getLogger("pymodbus").setLevel(logging.WARNING)  # its info lines repeat per site
        asyncio.run(_serve(config))
    except ConfigError as exc:
        sys.stderr.write(f"ess_simulator: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"ess_simulator: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
