"""Serve models over HTTP (FastAPI under uvicorn, one worker: the models live in the process).

    python tools/serve.py                                   # face-api: /detect and /faces/*, index in memory
    python tools/serve.py index=faces.faiss writable=false  # search an index built by tools/faces.py
    python tools/serve.py detector=det.ckpt faces=false embedder=emb.onnx geolocator=geo.ckpt
    MNET_SERVE_TOKEN=secret python tools/serve.py host=0.0.0.0 index=faces.faiss

Keys and defaults: conf/serve.yaml (mnet_vision.serving.config.ServiceConfig); endpoints, limits and
security: docs/serving.md. Beyond loopback with writes enabled the service refuses to start without a
token. Pretrained models are fetched into the cache on first use, before the service listens.
"""
import hydra
import uvicorn
from omegaconf import DictConfig, OmegaConf

from mnet_vision.config import CONF_DIR
from mnet_vision.serving.app import create_app
from mnet_vision.serving.config import ServiceConfig, check_bind

KEYS = ("detector", "faces", "pipeline", "embedder", "geolocator", "index", "writable", "token", "host", "port",
        "cors_origins", "max_upload_bytes", "max_pixels", "score", "top_k", "k", "threshold", "threads", "device",
        "fast")


def service_config(cfg: DictConfig) -> ServiceConfig:
    """The tool's keys as a checked :class:`ServiceConfig` (``batch.max_size`` / ``batch.max_wait_ms``)."""
    keys = {k: OmegaConf.to_container(cfg[k]) if OmegaConf.is_config(cfg[k]) else cfg[k] for k in KEYS}
    keys["cors_origins"] = tuple(keys["cors_origins"] or ())
    return ServiceConfig(**keys, batch_max_size=cfg.batch.max_size, batch_max_wait_ms=cfg.batch.max_wait_ms)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="serve")
def main(cfg: DictConfig) -> None:
    try:
        config = service_config(cfg)
        check_bind(config)
    except ValueError as err:
        raise SystemExit(f"serve: {err}") from err
    if not config.serves_anything:
        raise SystemExit("serve: nothing to serve: set detector=, faces=true, embedder= or geolocator= "
                         "(conf/serve.yaml)")
    try:
        app = create_app(config)
    except (FileNotFoundError, ValueError) as err:  # a model file missing, an index of another model ...
        raise SystemExit(f"serve: {err}") from err
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(f"serving {', '.join(sorted(app.state.batchers))} on http://{host}:{config.port}/ "
          f"(API: http://{host}:{config.port}/docs)", flush=True)
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level=str(cfg.log_level), workers=1)
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and raises Ctrl-C again for the caller
        pass
