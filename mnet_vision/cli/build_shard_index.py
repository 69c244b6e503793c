"""Build a faiss IVF index from predict's embedding shards, without loading all vectors at once.

    python tools/predict.py ... task=embedding out=run/            # writes run/shards/r000-c000000.{json,npy} ...
    python tools/build_shard_index.py shards=run/shards out=run/index [factory=auto] [on_disk=false]

Keys and defaults: conf/build_shard_index.yaml; quote a factory string holding commas for Hydra
(factory='IVF4096,PQ64np'). The index is trained on a seeded sample and filled
shard by shard (memory: one block of vectors plus the index's codes); on_disk=true keeps its
inverted lists in an .ivfdata file instead. Unfinished shards (an .npy without its JSON) are skipped
and counted; a shard of another dim, model or kind, or a damaged one, stops the build naming the
file. Search it with mnet_vision.index.shards.ShardIndex.load(out).search(vectors, k, nprobe).
See docs/large_indexes.md.
"""
import hydra
from omegaconf import DictConfig

from mnet_vision.config import CONF_DIR
from mnet_vision.index.shards import build_from_shards


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="build_shard_index")
def main(cfg: DictConfig) -> None:
    manifest = build_from_shards(
        cfg.shards, cfg.out, factory=str(cfg.factory), metric=str(cfg.metric),
        train_size=None if cfg.train_size is None else int(cfg.train_size),
        nprobe=None if cfg.nprobe is None else int(cfg.nprobe), on_disk=bool(cfg.on_disk),
        block_rows=int(cfg.block_rows), seed=int(cfg.seed))
    seconds = manifest["seconds"]
    print(f"{cfg.out}: {manifest['ntotal']:,} vectors from {len(manifest['shards'])} shards, "
          f"index {manifest['factory']} (nprobe {manifest['nprobe']}{', on disk' if manifest['on_disk'] else ''}), "
          f"trained on {manifest['train_size']:,} in {seconds['train']:.1f} s, added in {seconds['add']:.1f} s"
          + (f"; {manifest['unreadable']} unreadable photos listed by predict" if manifest["unreadable"] else "")
          + (f"; skipped {len(manifest['skipped'])} unfinished shards" if manifest["skipped"] else ""))
