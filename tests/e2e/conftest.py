"""The e2e notebooks install packages (the demo's `%pip install`): from an index on
127.0.0.1 (tests/package_index.py), never the internet. The kernels these tests start
(nbclient, nbconvert, JupyterLab) take it from $SANDBOX_PIP_INDEX_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import package_index
import pytest

_VARS = ("SANDBOX_PIP_INDEX_URL", "SANDBOX_NPM_REGISTRY")


@pytest.fixture(scope="session", autouse=True)
def _local_package_index() -> Iterator[package_index.Index]:
    saved = {k: os.environ.get(k) for k in _VARS}
    with package_index.serve() as index:
        os.environ["SANDBOX_PIP_INDEX_URL"] = index.simple
        os.environ["SANDBOX_NPM_REGISTRY"] = index.npm
        try:
            yield index
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
