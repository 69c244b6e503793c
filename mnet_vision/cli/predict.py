"""Batch prediction over a photo collection on Lightning's Trainer.predict, as resumable shards.

    python tools/predict.py kind=embeddings ckpt=outputs/faces/<time>/checkpoints/best.ckpt \
        input=photos/ out=embeddings chunk_size=256
    python tools/predict.py kind=detections ckpt=detector.onnx input=list.csv images=/data/photos out=boxes
    python tools/predict.py kind=embeddings ckpt=... input=coco.json images=val2017 out=emb \
        trainer=ddp trainer.devices=2          # two processes (GPUs; on CPU trainer.accelerator=cpu)

Keys and defaults: conf/predict.yaml. Writes out/shards/r<rank>-c<chunk>.json (+ .npy for embeddings and
attributes) and out/predict.json (mnet_vision/predict/shards.py); a rerun into the same out does only the
chunks without a shard, and refuses an out holding another kind, model, settings or input. On SLURM:
docs/predict.md.
"""
import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.config import CONF_DIR
from mnet_vision.images import checked_max_pixels
from mnet_vision.predict.run import predict_photos


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    summary = predict_photos(kind=str(cfg.kind), model=str(cfg.ckpt), source=str(cfg.input),
                             out=str(cfg.out), images=None if cfg.images is None else str(cfg.images),
                             chunk_size=int(cfg.chunk_size), batch=int(cfg.batch), workers=int(cfg.workers),
                             max_pixels=checked_max_pixels(cfg.max_pixels), score=float(cfg.score),
                             top_k=int(cfg.top_k), fast=bool(cfg.fast),
                             threads=None if cfg.threads is None else int(cfg.threads),
                             trainer=OmegaConf.to_container(cfg.trainer, resolve=True))
    if summary is None:  # another process of a multi-process run: the global-zero one reports
        return
    run = summary["this_run"]
    print(f"{summary['predicted']} photos predicted in {len(summary['shards'])} shards -> {cfg.out}/predict.json; "
          f"this run: {len(run['chunks_run'])} chunk(s), {run['photos']} photos on {run['processes']} process(es), "
          f"{run['photos_per_second']} photos/s; unreadable {summary['unreadable_count']}"
          + ("" if summary["complete"] else
             f"; INCOMPLETE: {summary['chunks'] - len(summary['shards'])} chunk(s) left"))
