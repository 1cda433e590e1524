"""`python -m ess_gapdetector` (console script `ess-gapdetector`): run the gap detector."""

from ess_common.runner import main_entry
from ess_gapdetector.bootstrap import bootstrap
from ess_gapdetector.settings import GapDetectorSettings


def main() -> None:
    main_entry(GapDetectorSettings, bootstrap)


if __name__ == "__main__":
    main()
