"""A registry of plug-ins, one module each (methods/, tasks/): a module registers its item on import, and the
package imports every module whose name does not start with "_", so a new plug-in is one new file.
Standard library only: the web process reads both registries."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, key: Callable[[T], str], unknown: type[ValueError]):
        self.what, self.key, self.unknown = what, key, unknown
        self.items: dict[str, T] = {}

    def register(self, item: T) -> T:
        name = self.key(item)
        if name in self.items:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self.items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self.items[name]
        except (KeyError, TypeError):
            known = ", ".join(self.items)
            raise self.unknown(f"unknown {self.what} {name!r}; known {self.what}s: {known}") from None

    def all(self) -> list[T]:
        return list(self.items.values())

    def discover(self, package: str, path: Iterable[str], first: Sequence[str] = ()) -> None:
        """Import the package's public modules: those named in `first` in that order, then the rest by name."""
        names = [info.name for info in pkgutil.iter_modules(path) if not info.name.startswith("_")]
        for name in [n for n in first if n in names] + sorted(n for n in names if n not in first):
            importlib.import_module(f"{package}.{name}")
