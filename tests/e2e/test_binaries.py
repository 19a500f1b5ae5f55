"""A missing proxy skips the end-to-end tests, except in CI, where it fails them."""

from __future__ import annotations

import pytest

from tests.e2e import conftest


def test_missing_binary_skips_outside_ci(monkeypatch):
    monkeypatch.setattr(conftest, "find_binary", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="perlbal is not installed"):
        conftest.require_binary("perlbal")


def test_missing_binary_fails_in_ci(monkeypatch):
    monkeypatch.setattr(conftest, "find_binary", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        conftest.require_binary("nginx")


def test_installed_binaries_are_found():
    for name in ("perlbal", "nginx"):
        path = conftest.find_binary(name)
        if path is None:
            pytest.skip(f"{name} is not installed here")
        assert path.endswith(name)
