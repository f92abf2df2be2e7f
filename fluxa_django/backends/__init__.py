"""Thin seams over the drivers: MySQL, Redis, local cache, ClickHouse, Kafka."""
