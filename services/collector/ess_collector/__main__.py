"""`python -m ess_collector`: poll the inventory's devices, publish to Kafka."""

from ess_collector.bootstrap import bootstrap
from ess_collector.settings import CollectorSettings
from ess_common.runner import main_entry


def main() -> None:
    main_entry(CollectorSettings, bootstrap)


if __name__ == "__main__":
    main()
