"""The HTTP service (``tools/serve.py``): :func:`mnet_vision.serving.app.create_app` over a
:class:`mnet_vision.serving.config.ServiceConfig`; docs/serving.md."""
