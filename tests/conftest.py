"""Shared fixtures: every filter test runs against both implementations.

``filters_impl`` yields the module holding the filter classes: the compiled
``smtpstream._filters`` (id ``c``) and the pure twin ``smtpstream._filters_py``
(id ``py``). When the extension was expected (``SMTPSTREAM_NO_EXTENSIONS`` is
not set) and cannot be imported, the ``c`` cases fail; they never skip.
"""
from __future__ import annotations

import importlib
import os

import pytest

NO_EXTENSIONS = os.environ.get("SMTPSTREAM_NO_EXTENSIONS", "") not in ("", "0")

IMPL_PARAMS = [
    pytest.param("c", marks=pytest.mark.c_extension, id="c"),
    pytest.param("py", id="py"),
]


def load_impl(name: str):
    if name == "py":
        return importlib.import_module("smtpstream._filters_py")
    return importlib.import_module("smtpstream._filters")


@pytest.fixture(scope="session", params=IMPL_PARAMS)
def filters_impl(request):
    """The filter module under test (compiled or pure Python)."""
    return load_impl(request.param)


def pytest_collection_modifyitems(config, items):
    # With SMTPSTREAM_NO_EXTENSIONS=1 the compiled twin is not under test at all:
    # the run proves the pure-Python package on its own.
    if not NO_EXTENSIONS:
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("c_extension") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
