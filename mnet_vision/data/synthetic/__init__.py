"""Deterministic synthetic datasets, written to disk in the layouts real data uses (one generator
module per set, their shared drawing primitives in :mod:`.drawing`, the write-once folder logic in
:mod:`.generate`), and the DataModules that generate them on first use (:mod:`.datamodules`).

The init imports nothing: a generator loads neither Lightning nor the other generators.
"""
