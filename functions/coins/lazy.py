"""A module imported when first used (functions/main.py: an instance serves one function,
and should load only the modules that function runs)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(f"coins.{self._name}")
        return getattr(self._module, attribute)


def lazy(name: str) -> Any:
    """`coins.<name>`, imported on the first attribute read."""
    return _Lazy(name)
