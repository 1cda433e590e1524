"""`python -m ess_gapdetector` (console script `ess-gapdetector`): run the gap detector."""

from ess_common.runner import main_entry
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.settings import GapDetectorSettings


def main() -> None:
    main_entry(GapDetectorSettings, GapDetectorService)


if __name__ == "__main__":
    main()
