"""The docs runner: executes the fenced examples of docs/*.md (tests/test_docs.py).

- ``pages``: reads a page into blocks and ``<!-- docs-test: ... -->`` markers;
- ``isolation``: moves database names and Redis databases per page, and back in outputs;
- ``databases``: creates, copies and drops the runner's MySQL and ClickHouse databases;
- ``projects``: builds a page's project (the example shop, a new project, Getting started)
  and runs its Python session (``worker.py``, one process per project);
- ``files``: file blocks (``# some/path.py``) and settings fragments;
- ``console``: runs the ``$ `` commands of a console block in bash and compares outputs;
- ``runner``: runs a page's blocks in order; ``DocsSession`` runs each page once;
- ``shop_demo.py``: fills the example shop the way ``make demo`` does;
- ``.curlrc``: curl without its progress meter, as on a terminal.

How to mark a page or a block is described in docs/testing.md ("How these docs are tested").
"""
