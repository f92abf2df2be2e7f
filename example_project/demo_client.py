"""Drives the running example shop with real HTTP requests and prints what happened."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765"


def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        status, payload = err.code, json.loads(err.read() or b"{}")
    print(f"{method:6} {path:28} -> {status} {json.dumps(payload)[:150]}")
    return status, payload


def main() -> None:
    _, books = call("POST", "/categories/", {"name": "Books"})
    created = []
    for name, price, status, tags in [
        ("Dune", 9.99, "active", ["new"]),
        ("Neuromancer", 7.5, "active", ["sale"]),
        ("Snow Crash", 12.0, "draft", []),
    ]:
        code, product = call(
            "POST",
            "/products/",
            {
                "name": name,
                "price": price,
                "category_id": books["id"],
                "status": status,
                "tags": tags,
            },
        )
        assert code == 201, product
        created.append(product["id"])
    code, listing = call("GET", "/products/?status=active")
    assert code == 200 and listing["total"] == 2, listing
    # Redis Search: word prefixes, a price range, a tag; results right after each write
    code, found = call("GET", "/products/?q=neuro")
    assert code == 200 and [p["name"] for p in found["products"]] == ["Neuromancer"], found
    code, found = call("GET", "/products/?min_price=8&max_price=20")
    assert [p["name"] for p in found["products"]] == ["Dune", "Snow Crash"], found
    code, found = call("GET", "/products/?tag=sale")
    assert [p["name"] for p in found["products"]] == ["Neuromancer"], found
    code, found = call("GET", "/products/?q=%22%29%20%7C%20%40name%3A*")  # '") | @name:*': escaped
    assert code == 200 and found["total"] == 0, found
    code, bad = call("GET", "/products/?min_price=nan")
    assert code == 400, bad
    code, bad = call(
        "POST", "/products/", {"name": "x" * 101, "price": 1, "category_id": books["id"]}
    )
    assert code == 400 and "ProductEntity.name" in bad["error"], bad
    code, updated = call("PATCH", f"/products/{created[2]}/", {"price": 10.5, "status": "active"})
    assert code == 200 and updated["price"] == 10.5
    code, _ = call("DELETE", f"/products/{created[0]}/")
    code, listing = call("GET", "/products/?status=active")
    assert [p["name"] for p in listing["products"]] == ["Neuromancer", "Snow Crash"], listing
    code, found = call("GET", "/products/?q=dune")  # soft-deleted: gone from the index
    assert found["total"] == 0, found
    code, found = call("GET", "/products/?min_price=10&status=active")  # updated price
    assert [p["name"] for p in found["products"]] == ["Snow Crash"], found
    print(f"search: {found['total']} active product(s) from 10.00: {found['products'][0]['name']}")
    # Orders: MySQL, then one analytics row per product in ClickHouse (chDB by default)
    code, order = call(
        "POST", "/orders/", {"email": "ann@example.com", "product_ids": created[1:], "quantity": 2}
    )
    assert code == 201 and order["total"] == 36.0, order
    code, order = call(
        "POST",
        "/orders/",
        {"email": "bob@example.com", "product_ids": [created[1]], "channel": "app"},
    )
    assert code == 201 and order["total"] == 7.5, order
    code, bad = call("POST", "/orders/", {"email": "bob@example.com", "product_ids": [created[0]]})
    assert code == 400, bad  # Dune is deleted
    code, deleted = call("GET", f"/products/{created[0]}/")
    assert deleted["deleted"] is True, deleted
    code, _ = call("GET", "/products/999999/")
    assert code == 404
    print("demo client: all requests behaved as expected")


if __name__ == "__main__":
    main()
