"""`python -m ess_archive`: every reading as Parquet in the archive's bucket."""

from ess_archive.bootstrap import bootstrap
from ess_archive.settings import ArchiveSettings
from ess_common.runner import main_entry


def main() -> None:
    main_entry(ArchiveSettings, bootstrap)


if __name__ == "__main__":
    main()
