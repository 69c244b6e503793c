"""Test helpers (no test module imports another): ``configs`` (the tiny run settings, from
``conf/debug/``), ``cli`` (running the tools), ``models`` and ``coco`` (shared fixtures' data)."""
