"""pytest support for projects using fluxa_django (auto-registered plugin)."""
