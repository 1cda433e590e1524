"""Where the archive is: an S3-compatible bucket (`ESS_ARCHIVE_S3_*`).

The local stack writes MinIO's endpoint, bucket and credentials to
`.local/stack.env`; Kubernetes takes them from a ConfigMap and a Secret (the
cloud overlay points at the provider's bucket; GCS through its S3 API with
HMAC keys). Credentials are `SecretStr`: never logged, never in a repr.
Unset keys fall back to the provider's own chain (instance role, env).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ess_common.settings import CommonSettings


class ArchiveStoreSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    archive_s3_bucket: str | None = Field(
        default=None, description="the archive's bucket; unset: no archive"
    )
    archive_s3_endpoint: str | None = Field(
        default=None, description="e.g. http://127.0.0.1:19000; unset: AWS's regional endpoint"
    )
    archive_s3_region: str = "us-east-1"
    archive_s3_prefix: str = Field(default="", pattern=r"^([A-Za-z0-9._=-]+/)*$")
    archive_s3_access_key_id: SecretStr | None = None
    archive_s3_secret_access_key: SecretStr | None = None
    archive_s3_timeout_s: float = Field(default=30.0, gt=0, le=600)
    archive_s3_connect_timeout_s: float = Field(default=5.0, gt=0, le=120)

    @property
    def archive_configured(self) -> bool:
        return bool(self.archive_s3_bucket)
