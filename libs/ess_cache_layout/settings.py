"""What reading the cache needs: Redis (`ESS_REDIS_URL`, common) and the key prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ess_common.settings import CommonSettings


class CacheReadSettings(CommonSettings):
    """The cache's Redis namespace; `ess_cache.settings.CacheSettings` builds on it."""

    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    cache_key_prefix: str = Field(default="ess", pattern=r"^[a-zA-Z0-9._-]{1,64}$")
