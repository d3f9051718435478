"""The public message types are all exported from `tierline.schemas`, and nothing else is."""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil

from pydantic import BaseModel

import tierline.schemas as schemas


def test_every_name_in_all_exists_and_all_is_sorted() -> None:
    for name in schemas.__all__:
        assert hasattr(schemas, name), name
    assert list(schemas.__all__) == sorted(schemas.__all__)


def test_every_message_type_of_a_topic_is_exported() -> None:
    """A pydantic model or enum defined in a schemas module is public API: export it."""
    exported = set(schemas.__all__)
    missing = []
    for info in pkgutil.iter_modules(schemas.__path__):
        if info.name in {"export", "migrations", "rows"}:  # tools, not message types
            continue
        module = importlib.import_module(f"tierline.schemas.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("_") or not inspect.isclass(value):
                continue
            if value.__module__ != module.__name__:
                continue
            if issubclass(value, (BaseModel, enum.Enum)) and name not in exported:
                missing.append(f"{module.__name__}.{name}")
    assert missing == []
