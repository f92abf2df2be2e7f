"""Drives the running example shop with real HTTP requests and prints what happened."""

from __future__ import annotations

import json
import sys
import time
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


def async_orders(count: int = 12) -> None:
    """Orders through Kafka (``make demo`` runs this while ``fluxa_consume_async`` runs):
    each POST /orders/async/ is answered at once with the order's id; MySQL holds the
    order once the consumer applied it."""
    code, listing = call("GET", "/products/?status=active")
    products = [p["id"] for p in listing["products"]]
    ids: list[int] = []
    for number in range(count):
        code, accepted = call(
            "POST",
            "/orders/async/",
            {
                "email": "ann@example.com",
                "product_ids": [products[number % len(products)]],
                "quantity": number + 1,
            },
        )
        assert code == 202, accepted
        ids.append(accepted["id"])
    code, _ = call("GET", f"/orders/{ids[-1]}/")  # 404 until the consumer applied it
    shown, deadline = -1, time.monotonic() + 60
    while time.monotonic() < deadline:
        applied = sum(1 for i in ids if quiet("GET", f"/orders/{i}/")[0] == 200)
        if applied != shown:
            print(f"MySQL holds {applied} of the {count} async orders")
            shown = applied
        if applied == count:
            break
        time.sleep(0.5)
    assert shown == count, f"only {shown} of {count} async orders were applied"
    code, order = call("GET", f"/orders/{ids[-1]}/")
    assert code == 200 and order["quantity"] == count, order
    print("demo client: every async order was written once")


def quiet(method: str, path: str) -> tuple[int, Any]:
    """A request that prints nothing (polling)."""
    request = urllib.request.Request(BASE + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


if __name__ == "__main__":
    if sys.argv[2:] == ["async-orders"]:
        async_orders()
    else:
        main()
