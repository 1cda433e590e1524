"""Installing what the stack runs, from Debian's packages and Maven Central only.

Everything slow is cached outside the checkout (`~/.cache/ess-stack`) and
built into a `.partial` folder that is renamed only when complete, so an
interrupted run never leaves a half-made cache that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ess_stack.config import StackConfig
from ess_stack.errors import StackError

log = logging.getLogger(__name__)

PG_MAJOR = 17
# The index manager's extensions: HypoPG (hypothetical indexes) and pg_qualstats
# (predicates actually used); pg_stat_statements ships with postgresql-17 itself.
PG_EXTENSION_PACKAGES = (f"postgresql-{PG_MAJOR}-hypopg", f"postgresql-{PG_MAJOR}-pg-qualstats")
PG_PACKAGES = (
    f"postgresql-{PG_MAJOR}",
    f"postgresql-{PG_MAJOR}-timescaledb",
    *PG_EXTENSION_PACKAGES,
)
# Module file (in the PostgreSQL lib folder) -> the package that brings it.
_EXTENSION_MODULES = {
    "hypopg": f"postgresql-{PG_MAJOR}-hypopg",
    "pg_qualstats": f"postgresql-{PG_MAJOR}-pg-qualstats",
}
# Loaded at server start when their module is installed (a missing one is skipped).
PRELOAD_CANDIDATES = ("timescaledb", "pg_stat_statements", "pg_qualstats")

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ess.localstack</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version></dependency>
  </dependencies>
</project>
"""
# Kafka's command-line tools (kafka-consumer-groups, kafka-topics, ...): their own folder,
# so resolving them never touches the jars a running broker was started from.
_KAFKA_TOOLS_POM = _KAFKA_POM.replace("kafka-broker", "kafka-tools").replace(
    "<artifactId>kafka_2.13</artifactId>", "<artifactId>kafka-tools</artifactId>"
)


def _run(
    component: str, argv: list[str], log_file: Path, env: dict[str, str] | None = None
) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        raise StackError(
            component, f"`{' '.join(argv[:4])} ...` failed ({result.returncode})", log_file
        )


def _require_root(component: str, what: str) -> None:
    if os.geteuid() != 0:
        raise StackError(component, f"{what} needs root (or install it by hand first)")


def apt_install(component: str, packages: list[str], log_file: Path) -> None:
    _require_root(component, f"installing {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("%s: apt-get install %s", component, " ".join(packages))
    stamp = Path("/var/lib/apt/lists")
    if not any(stamp.glob("*Packages*")):
        _run(component, ["apt-get", "update", "-qq"], log_file, env)
    try:
        _run(component, ["apt-get", "install", "-y", "-qq", *packages], log_file, env)
    except StackError:  # stale package lists: refresh once and retry
        _run(component, ["apt-get", "update", "-qq"], log_file, env)
        _run(component, ["apt-get", "install", "-y", "-qq", *packages], log_file, env)


def ensure_redis(cfg: StackConfig) -> str:
    found = shutil.which("redis-server")
    if found is None:
        apt_install("redis", ["redis-server"], cfg.state / "logs" / "provision.log")
        found = shutil.which("redis-server")
    if found is None:
        raise StackError("redis", "redis-server not found after install")
    return found


def ensure_java(cfg: StackConfig) -> None:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        apt_install(
            "kafka", ["openjdk-17-jre-headless", "maven"], cfg.state / "logs" / "provision.log"
        )


def ensure_kafka(cfg: StackConfig) -> Path:
    """Folder of the Kafka broker's jars, resolved from Maven Central with mvn."""
    libs = cfg.cache_dir / f"kafka-{cfg.kafka_version}" / "libs"
    return _maven_jars(cfg, _KAFKA_POM, libs, "kafka_2.13-*.jar", "Apache Kafka")


def ensure_kafka_tools(cfg: StackConfig) -> Path:
    """Folder of Kafka's tools jars (`org.apache.kafka:kafka-tools` and its dependencies)."""
    libs = cfg.cache_dir / f"kafka-tools-{cfg.kafka_version}" / "libs"
    return _maven_jars(cfg, _KAFKA_TOOLS_POM, libs, "kafka-tools-[0-9]*.jar", "Kafka's tools")


def _maven_jars(cfg: StackConfig, pom: str, libs: Path, marker: str, what: str) -> Path:
    """`pom`'s runtime dependencies copied into `libs` (cached: built aside, then renamed)."""
    if libs.is_dir() and any(libs.glob(marker)):
        return libs
    ensure_java(cfg)
    work = libs.parent.with_name(libs.parent.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "pom.xml").write_text(pom.format(version=cfg.kafka_version))
    log.info("kafka: resolving %s %s from Maven Central", what, cfg.kafka_version)
    _run(
        "kafka",
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={work / 'libs'}",
        ],
        cfg.state / "logs" / "provision.log",
    )
    shutil.rmtree(libs.parent, ignore_errors=True)
    work.rename(libs.parent)
    return libs


@dataclass(frozen=True)
class PgRuntime:
    """How to run PostgreSQL 17 + TimescaleDB: natively (Debian 13) or in a trixie chroot."""

    root: Path  # "/" when native

    @property
    def chrooted(self) -> bool:
        return self.root != Path("/")

    @property
    def bindir(self) -> str:
        return f"/usr/lib/postgresql/{PG_MAJOR}/bin"

    def host_path(self, inner: str) -> Path:
        return self.root / inner.lstrip("/")

    def command(self, *argv: str) -> list[str]:
        """argv run as the `postgres` user (PostgreSQL refuses to run as root)."""
        if os.geteuid() != 0:
            return list(argv)
        if self.chrooted:
            return ["chroot", "--userspec=postgres:postgres", str(self.root), *argv]
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]

    def chown_to_postgres(self, inner: str) -> None:
        if os.geteuid() == 0:
            prefix = ["chroot", str(self.root)] if self.chrooted else []
            subprocess.run([*prefix, "chown", "-R", "postgres:postgres", inner], check=True)


def _host_is_suite(suite: str) -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except FileNotFoundError:
        return False
    return f"VERSION_CODENAME={suite}" in text


def ensure_postgres(cfg: StackConfig) -> PgRuntime:
    log_file = cfg.state / "logs" / "provision.log"
    native = PgRuntime(Path("/"))
    if Path(native.bindir, "postgres").exists() and _has_timescaledb(native):
        missing = missing_extension_packages(native)
        if missing and _host_is_suite(cfg.debian_suite):
            apt_install("postgres", missing, log_file)
        elif missing:
            log.warning(
                "postgres: %s not installed: the index manager says what it cannot do",
                ", ".join(missing),
            )
        return native
    if _host_is_suite(cfg.debian_suite):
        _no_default_cluster()
        apt_install("postgres", list(PG_PACKAGES), log_file)
        return native
    root = cfg.cache_dir / f"{cfg.debian_suite}-root"
    chroot = PgRuntime(root)
    if Path(chroot.host_path(chroot.bindir), "postgres").exists() and _has_timescaledb(chroot):
        missing = missing_extension_packages(chroot)
        if missing:  # a root cached before these packages were added
            _chroot_install(chroot, missing, log_file)
        return chroot
    if shutil.which("debootstrap") is None:
        apt_install("postgres", ["debootstrap"], log_file)
    _require_root("postgres", "debootstrap")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info(
        "postgres: debootstrap %s with %s (about a minute)", cfg.debian_suite, " ".join(PG_PACKAGES)
    )
    _run(
        "postgres",
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PG_PACKAGES)}",
            cfg.debian_suite,
            str(partial),
            cfg.debian_mirror,
        ],
        log_file,
    )
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return chroot


def _libdir(rt: PgRuntime) -> Path:
    return rt.host_path(f"/usr/lib/postgresql/{PG_MAJOR}/lib")


def _has_timescaledb(rt: PgRuntime) -> bool:
    return any(_libdir(rt).glob("timescaledb*.so"))


def missing_extension_packages(rt: PgRuntime) -> list[str]:
    """The index manager's packages whose module is not installed in `rt`."""
    libdir = _libdir(rt)
    return [
        pkg for module, pkg in _EXTENSION_MODULES.items() if not (libdir / f"{module}.so").exists()
    ]


def preload_libraries(rt: PgRuntime, timescaledb: bool = True) -> list[str]:
    """`shared_preload_libraries` for a server of `rt`: the candidates whose module exists."""
    libdir = _libdir(rt)
    return [
        lib
        for lib in PRELOAD_CANDIDATES
        if (timescaledb or lib != "timescaledb") and (libdir / f"{lib}.so").exists()
    ]


def _chroot_install(rt: PgRuntime, packages: list[str], log_file: Path) -> None:
    """apt-get install inside the cached trixie root (its files only; running servers go on)."""
    _require_root("postgres", f"installing {' '.join(packages)} into {rt.root}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("postgres: installing %s into the cached root %s", " ".join(packages), rt.root)
    apt = ["chroot", str(rt.root), "apt-get"]
    try:
        _run("postgres", [*apt, "install", "-y", "-qq", *packages], log_file, env)
    except StackError:  # the root's package lists are as old as the root: refresh once
        _run("postgres", [*apt, "update", "-qq"], log_file, env)
        _run("postgres", [*apt, "install", "-y", "-qq", *packages], log_file, env)


def _no_default_cluster() -> None:
    """Stop Debian's package from creating and starting a cluster on port 5432."""
    conf = Path("/etc/postgresql-common/createcluster.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    if "create_main_cluster = false" not in (conf.read_text() if conf.exists() else ""):
        with conf.open("a") as fh:
            fh.write("\ncreate_main_cluster = false\n")
