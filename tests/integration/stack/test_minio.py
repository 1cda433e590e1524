"""The stack's MinIO: built once and cached, loopback only, the bucket created on start,
data kept across a restart, stopped by PID (and never a stranger on its port)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ess_archive_layout.bucket import ensure_bucket
from ess_archive_layout.store import ArchiveStore, ArchiveUnavailable
from ess_stack.components import Status
from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.minio import Minio, MinioConfig
from ess_stack.procs import port_open
from helpers.archive import store_of
from helpers.disposable import disposable_minio, free_port


def test_minio_serves_the_bucket_on_loopback_and_stops_by_pid(tmp_path: Path) -> None:
    with disposable_minio(tmp_path) as minio:
        status: Status = minio.server.status()
        assert status.running
        assert status.endpoint.startswith("http://127.0.0.1:")
        m = minio.server.minio
        again = ensure_bucket(
            minio.server.endpoint,
            m.bucket,
            region=m.region,
            access_key=m.root_user,
            secret_key=m.root_password,
        )
        assert again is False  # created on start already
        store = ArchiveStore(store_of(minio.env_lines()))
        asyncio.run(store.put("kept.txt", b"1"))
        minio.stop()
        assert not port_open("127.0.0.1", m.port)
        with pytest.raises(ArchiveUnavailable):
            asyncio.run(store.get("kept.txt"))
        minio.start()
        found = asyncio.run(store.get("kept.txt"))
        assert found is not None
        assert found.data == b"1"


def test_a_port_held_by_a_stranger_is_an_error(tmp_path: Path) -> None:
    with disposable_minio(tmp_path / "a") as first:
        taken = first.server.minio.port
        other = Minio(
            StackConfig(state_dir=tmp_path / "b"), MinioConfig(port=taken, console_port=free_port())
        )
        with pytest.raises(StackError, match="already taken"):
            other.start()
