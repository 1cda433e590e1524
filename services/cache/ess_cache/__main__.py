"""`python -m ess_cache`: run the cache service."""

from ess_cache.bootstrap import bootstrap
from ess_cache.settings import CacheSettings
from ess_common.runner import main_entry


def main() -> None:
    main_entry(CacheSettings, bootstrap)


if __name__ == "__main__":
    main()
