"""Code generation: ``EntitySchema`` -> a typed Python package (one module per entity)."""

from fluxa_django.codegen.generator import generate, render_package

__all__ = ["generate", "render_package"]
