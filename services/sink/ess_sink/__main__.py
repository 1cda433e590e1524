"""`python -m ess_sink`: run one sink (set ESS_SINK_CLUSTER=local|cloud)."""

from ess_common.runner import main_entry
from ess_sink.service import SinkService
from ess_sink.settings import SinkSettings


def main() -> None:
    main_entry(SinkSettings, SinkService)


if __name__ == "__main__":
    main()
