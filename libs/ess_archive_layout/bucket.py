"""Creating the archive's bucket on an S3-compatible server (the local stack, compose).

One signed `PUT /<bucket>` (AWS Signature Version 4, stdlib only): object
store clients (obstore included) work inside a bucket and cannot create one,
and a whole SDK for one request at start-up is not worth its weight. An
existing bucket owned by the same account is success.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import SecretStr

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class BucketError(Exception):
    """The bucket could not be created (the message names the server's answer)."""


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_headers(
    method: str,
    url: str,
    *,
    region: str,
    access_key: str,
    secret_key: SecretStr,
    now: datetime | None = None,
) -> dict[str, str]:
    """SigV4 headers of a request without a body (path-style URL, no query)."""
    parts = urlsplit(url)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": parts.netloc, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            "",
            *(f"{k}:{headers[k]}" for k in sorted(headers)),
            "",
            names,
            _EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(("AWS4" + secret_key.get_secret_value()).encode(), day)
    for part in (region, "s3", "aws4_request"):
        key = _sign(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names},"
        f" Signature={signature}"
    )
    return headers


def ensure_bucket(
    endpoint: str,
    bucket: str,
    *,
    region: str,
    access_key: str,
    secret_key: SecretStr,
    timeout_s: float = 60.0,
) -> bool:
    """Create `bucket` if missing; True when it was created now. Retries while the
    server starts (it may accept connections before it serves requests)."""
    url = f"{endpoint.rstrip('/')}/{bucket}"
    deadline = time.monotonic() + timeout_s
    while True:
        headers = signed_headers(
            "PUT", url, region=region, access_key=access_key, secret_key=secret_key
        )
        request = urllib.request.Request(url, method="PUT", headers=headers)  # noqa: S310 - http(s) endpoint from settings
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310
                return True
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            if exc.code == 409 and "BucketAlreadyOwnedByYou" in body:
                return False
            if exc.code < 500 or time.monotonic() > deadline:
                raise BucketError(
                    f"creating bucket {bucket!r}: HTTP {exc.code}: {body[:300]}"
                ) from None
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                raise BucketError(f"creating bucket {bucket!r}: {exc}") from None
        time.sleep(0.5)
