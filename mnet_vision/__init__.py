"""mnet_vision: detection and embedding models on a shared MobileNet backbone.

Entry points: :func:`mnet_vision.config.compose` (a run config from ``conf/`` with CLI-style
overrides), :func:`mnet_vision.model.build_model`, :func:`mnet_vision.training.build_task`,
:func:`mnet_vision.training.train` and :func:`mnet_vision.training.evaluate`.
"""
__version__ = "0.1.0"

import os

# albumentations asks PyPI for its latest version on import (up to 2 s, and a warning, on machines
# without internet: every tool run, every DataLoader worker that imports it). Users can still opt in.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
