"""`python -m ess_cache`: run the cache service."""

from ess_cache.service import CacheService
from ess_cache.settings import CacheSettings
from ess_common.runner import main_entry


def main() -> None:
    main_entry(CacheSettings, CacheService)


if __name__ == "__main__":
    main()
