"""CPU benchmarks of our models beside their peers (timm, torchvision, faiss, s2geometry), one
module per family; :mod:`~mnet_vision.benchmarks.suite` names them for ``tools/benchmark.py``.

Each family module has a ``*_rows``/``compare_*`` function that measures (its keyword defaults are
the benchmark's defaults), a ``*_table`` function that writes the rows as Markdown, and a
``report`` that adds the header line. Shared timing lives in :mod:`~mnet_vision.benchmarks.timing`;
our models are built as users build them, in :mod:`~mnet_vision.benchmarks.models`.
"""
