"""The example shop after ``make demo``, for docs pages marked ``project=shop``.

Run as ``python shop_demo.py`` in a copy of example_project whose settings point at the
page's own database (empty). Like scripts/demo.sh it migrates the schema, sends the requests of
``demo_client.py`` (through Django's test client instead of a server: the same middleware,
views and flushes) and rebuilds the products' search index with ``fluxa_reindex``; it prints
what the demo client prints. The process
then ends, as the demo's server does, so the ids it reserved are never handed out again.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any


def main() -> None:
    sys.path[0] = os.getcwd()
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    with open(os.devnull, "w") as devnull:
        call_command("fluxa_migrate", interactive=False, stdout=devnull)

    demo_client = importlib.import_module("demo_client")  # example_project/demo_client.py
    client = Client(HTTP_HOST="127.0.0.1")

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else ""
        response = client.generic(method, path, data, content_type="application/json")
        status, payload = response.status_code, json.loads(response.content or b"{}")
        print(f"{method:6} {path:28} -> {status} {json.dumps(payload)[:150]}")
        return status, payload

    vars(demo_client)["call"] = call  # the client's transport: no server needed
    demo_client.main()
    with open(os.devnull, "w") as devnull:
        call_command("fluxa_reindex", "ProductEntity", stdout=devnull, stderr=devnull)


if __name__ == "__main__":
    main()
