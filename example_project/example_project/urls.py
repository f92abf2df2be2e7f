"""URLs of the example shop (views arrive with the generated providers)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
