"""Kafka's own command-line tools against the local broker: `make kafka ARGS="TOOL ..."`.

    make kafka ARGS="kafka-consumer-groups --describe --all-groups"
    .local/venv/bin/python -m ess_stack kafka kafka-topics --list

The tools are the `org.apache.kafka:kafka-tools` jar of the broker's version
and its dependencies, resolved from Maven Central by the stack's provisioning
into their own cache folder (`ensure_kafka_tools`). `--bootstrap-server` is
the local broker unless given; the tools log warnings only, on stderr.
"""

from __future__ import annotations

import subprocess

from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.provision import ensure_kafka_tools

# the shell scripts of Kafka's distribution -> their main classes (Kafka 4.x)
TOOLS = {
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
}

_LOG4J = "status = error\nrootLogger.level = warn\n"


def tool_command(cfg: StackConfig, argv: list[str]) -> list[str]:
    """The `java` command line of `argv` = [tool, its arguments...]."""
    if not argv or argv[0] not in TOOLS:
        raise StackError(
            "kafka tools",
            f"name one of Kafka's tools first (got {' '.join(argv) or 'nothing'}): "
            + ", ".join(sorted(TOOLS)),
        )
    tool, args = argv[0], argv[1:]
    libs = ensure_kafka_tools(cfg)
    log4j = libs.parent / "log4j2-tools.properties"
    if not log4j.exists():
        log4j.write_text(_LOG4J)
    if not any(a == "--bootstrap-server" or a.startswith("--bootstrap-server=") for a in args):
        args = ["--bootstrap-server", f"{cfg.host}:{cfg.kafka_port}", *args]
    return [
        "java",
        "-Xmx256m",
        "-XX:TieredStopAtLevel=1",  # short-lived: start fast rather than run fast
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
        TOOLS[tool],
        *args,
    ]


def run_tool(cfg: StackConfig, argv: list[str]) -> int:
    """Run the tool in the foreground; its exit code."""
    return subprocess.run(tool_command(cfg, argv), check=False).returncode
