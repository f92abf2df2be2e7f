"""Names used in generated code."""

from __future__ import annotations

import re


def snake(name: str) -> str:
    """``ProductEntity`` -> ``product_entity``; ``every_type`` stays."""
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    out = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", out)
    return out.lower()


def module_alias(entity_name: str) -> str:
    """``CategoryEntity`` -> ``_category_entity``: how other generated modules import its module."""
    return f"_{snake(entity_name)}"
