"""URLs of the example shop."""

from __future__ import annotations

from django.urls import path
from shop import orders, views

urlpatterns = [
    path("categories/", views.create_category),
    path("products/", views.products),
    path("products/<int:product_id>/", views.product),
    path("orders/", orders.orders),
    path("orders/async/", views.place_order_async),
    path("orders/<int:order_id>/", views.order),
]
