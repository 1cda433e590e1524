"""`python -m ess_stack up|down|status|env|reset|kafka|bucket`: the local stack, no Docker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
from pydantic import SecretStr

from ess_archive_layout.bucket import BucketError, ensure_bucket
from ess_archive_layout.settings import ArchiveStoreSettings
from ess_common.settings import CommonSettings, ConfigError, load_settings
from ess_stack.components import Kafka, Postgres, Redis, Status
from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.kafka_tools import TOOLS, run_tool
from ess_stack.minio import Minio, MinioConfig
from ess_stack.prometheus import Prometheus, Pushgateway
from ess_stack.provision import ensure_postgres
from ess_stack.run import run_pipeline
from ess_stack.setup import create_topics, prepare_database

log = logging.getLogger("ess_stack")


class Stack:
    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.redis = Redis(cfg)
        self.kafka = Kafka(cfg)
        self.db_local = Postgres(cfg, "local", cfg.db_local_port)
        self.db_cloud = Postgres(cfg, "cloud", cfg.db_cloud_port)
        self.prometheus = Prometheus(cfg)
        self.pushgateway = Pushgateway(cfg)
        self.minio = Minio(cfg, MinioConfig())

    @property
    def components(self) -> list[Redis | Kafka | Postgres | Prometheus | Pushgateway | Minio]:
        return [
            self.redis,
            self.kafka,
            self.db_local,
            self.db_cloud,
            self.prometheus,
            self.pushgateway,
            self.minio,
        ]

    def provision(self) -> None:
        started = time.monotonic()
        self.redis.provision()  # apt first: dpkg takes one install at a time
        self.prometheus.provision()
        self.pushgateway.provision()
        with ThreadPoolExecutor(max_workers=2) as pool:
            kafka = pool.submit(self.kafka.provision)
            pg = pool.submit(ensure_postgres, self.cfg)
            kafka.result()
            runtime = pg.result()
        self.minio.provision()  # a Go build the first time (minutes), cached after
        self.db_local.runtime = self.db_cloud.runtime = runtime
        where = f"chroot {runtime.root}" if runtime.chrooted else "native"
        log.info("provisioned in %.1fs (postgres: %s)", time.monotonic() - started, where)

    def up(self) -> None:
        self.cfg.state.mkdir(parents=True, exist_ok=True)
        self.provision()
        for comp in self.components:
            comp.start()
        versions = asyncio.run(self._prepare())
        self.cfg.env_file.write_text("\n".join(self.env_lines()) + "\n")
        log.info("timescaledb %s on both clusters; settings in %s", versions, self.cfg.env_file)

    def env_lines(self) -> list[str]:
        return [*self.cfg.env_lines(), *self.minio.env_lines()]

    async def _prepare(self) -> str:
        local, cloud, created = await asyncio.gather(
            prepare_database(self.cfg, self.db_local.name, self.cfg.db_local_port),
            prepare_database(self.cfg, self.db_cloud.name, self.cfg.db_cloud_port),
            create_topics(self.cfg),
        )
        if created:
            log.info("created topics: %s", ", ".join(created))
        return local if local == cloud else f"{local} (local) / {cloud} (cloud)"

    def restart_postgres(self) -> None:
        """Install what PostgreSQL lacks, restart both servers, prepare their databases."""
        runtime = ensure_postgres(self.cfg)
        for db in (self.db_local, self.db_cloud):
            db.runtime = runtime
            db.restart()
        asyncio.run(self._prepare_databases())

    async def _prepare_databases(self) -> None:
        await asyncio.gather(
            prepare_database(self.cfg, self.db_local.name, self.cfg.db_local_port),
            prepare_database(self.cfg, self.db_cloud.name, self.cfg.db_cloud_port),
        )

    def down(self) -> list[str]:
        return [c.name for c in reversed(self.components) if c.stop()]

    def reset(self) -> None:
        self.down()
        shutil.rmtree(self.cfg.state / "kafka", ignore_errors=True)
        for db in (self.db_local, self.db_cloud):
            db.remove_data()
        self.minio.remove_data()
        self.cfg.env_file.unlink(missing_ok=True)


def _print_status(statuses: list[Status], as_json: bool) -> None:
    if as_json:
        print(
            orjson.dumps(
                [{**s.__dict__, "log_file": str(s.log_file)} for s in statuses],
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
        return
    print(f"{'COMPONENT':<12} {'STATE':<8} {'PID':>8}  ENDPOINT")
    for s in statuses:
        state = "running" if s.running else "stopped"
        print(f"{s.name:<12} {state:<8} {s.pid or '-':>8}  {s.endpoint}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ess-stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="provision (cached) and start every server of the stack")
    sub.add_parser("down", help="stop the processes the stack started (by PID)")
    status = sub.add_parser("status", help="show what is running")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("env", help="print the connection settings (ESS_* variables)")
    sub.add_parser("reset", help="stop and delete the stack's data (not the caches)")
    sub.add_parser(
        "restart-postgres",
        help="provision and restart only the two PostgreSQL servers (Kafka, Redis keep running)",
    )
    sub.add_parser("run", help="start the stack and every service; live view; Ctrl-C stops")
    topics = sub.add_parser(
        "topics", help="create the pipeline's topics on ESS_KAFKA_BOOTSTRAP (compose, k8s)"
    )
    topics.add_argument("--bootstrap", help="default: ESS_KAFKA_BOOTSTRAP")
    sub.add_parser(
        "bucket", help="create the archive's bucket at ESS_ARCHIVE_S3_ENDPOINT (compose, k8s)"
    )
    kafka = sub.add_parser("kafka", help="one of Kafka's own tools on the local broker")
    kafka.add_argument("tool", nargs=argparse.REMAINDER, help=", ".join(sorted(TOOLS)))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s stack: %(message)s", datefmt="%H:%M:%S"
    )
    stack = Stack(StackConfig())
    try:
        if args.command == "up":
            stack.up()
            _print_status([c.status() for c in stack.components], as_json=False)
        elif args.command == "down":
            stopped = stack.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.command == "status":
            statuses = [c.status() for c in stack.components]
            _print_status(statuses, args.json)
            return 0 if all(s.running for s in statuses) else 3
        elif args.command == "env":
            print("\n".join(stack.env_lines()))
        elif args.command == "run":
            stack.up()
            return run_pipeline(stack.cfg)
        elif args.command == "topics":
            common = load_settings(CommonSettings)
            created = asyncio.run(
                create_topics(
                    stack.cfg, common.topic_prefix, args.bootstrap or common.kafka_bootstrap
                )
            )
            print("created: " + (", ".join(created) if created else "all topics already existed"))
        elif args.command == "kafka":
            return run_tool(stack.cfg, args.tool)
        elif args.command == "bucket":
            return _create_bucket()
        elif args.command == "restart-postgres":
            stack.restart_postgres()
            _print_status([db.status() for db in (stack.db_local, stack.db_cloud)], as_json=False)
        elif args.command == "reset":
            stack.reset()
            print("stack stopped and its data removed")
    except (StackError, ConfigError, BucketError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _create_bucket() -> int:
    s = load_settings(ArchiveStoreSettings)
    if not (s.archive_s3_bucket and s.archive_s3_endpoint and s.archive_s3_access_key_id):
        raise ConfigError("ESS_ARCHIVE_S3_BUCKET, _ENDPOINT and _ACCESS_KEY_ID must be set")
    created = ensure_bucket(
        s.archive_s3_endpoint,
        s.archive_s3_bucket,
        region=s.archive_s3_region,
        access_key=s.archive_s3_access_key_id.get_secret_value(),
        secret_key=s.archive_s3_secret_access_key or SecretStr(""),
    )
    print(f"bucket {s.archive_s3_bucket}: {'created' if created else 'already existed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
