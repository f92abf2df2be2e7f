"""Benchmarks of fluxa_django against raw mysqlclient / redis-py and the Django ORM (``make bench``).

Run ``python -m bench`` from the repository root; ``python -m bench --help`` lists
the options. Results are printed as a table and written to
``bench/results/latest.json``. Targets come from ``DESIGN.md`` ("Performance
targets") and are reported, not enforced: a missed target does not fail the run,
a missing service does.
"""
