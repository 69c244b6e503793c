"""Faces in photos: index every face of a set of photos, search the index with photos, cluster it.

    python tools/faces.py index photos=photos/ out=faces.faiss [identities=people.csv]
    python tools/faces.py search index=faces.faiss photos=group.jpg k=5 threshold=0.6 out=search/
    python tools/faces.py cluster index=faces.faiss [threshold=0.6] [method=average] out=clusters/

index: every face detected, aligned and described (face-api's detector, landmarks and descriptor by
default: mnet_vision.faces.pipeline.FacePipeline, keys under pipeline.) into a FaceIndex recording
photo, box, landmarks and the embedding model; identities= a folder of identity folders or a CSV of
photo,identity / photo,face,identity rows. search: each face's top k with photo, box and Euclidean
distance ("unknown" beyond threshold), out= search.json, each photo boxed and labelled, and a contact
sheet of each face beside its matches. cluster: the same person across photos, no names (a distance
threshold, or method=kmeans clusters=K); out= clusters.json and a contact sheet per cluster. Photos
with no face are listed, unreadable files counted and listed; an index of another embedding model is
refused naming both; out= never overwrites an input. Keys and defaults: conf/faces.yaml.
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.config import CONF_DIR
from mnet_vision.faces.gallery import cluster_index, index_photos, search_photos, value_key
from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.images import checked_max_pixels

COMMANDS = ("index", "search", "cluster")


def _pipeline(cfg: DictConfig) -> FacePipeline:
    return FacePipeline(**{k: v for k, v in OmegaConf.to_container(cfg.pipeline).items() if v is not None})


def _required(cfg: DictConfig, *keys: str) -> None:
    missing = [k for k in keys if cfg[k] is None]
    if missing:
        raise SystemExit(f"faces {cfg.command}: give {' and '.join(f'{k}=' for k in missing)} (see conf/faces.yaml)")


def _photos(cfg: DictConfig):
    return OmegaConf.to_container(cfg.photos) if OmegaConf.is_list(cfg.photos) else str(cfg.photos)


def _listed(what: str, items: list) -> str:
    return f"\n  {what} ({len(items)}): " + ", ".join(map(str, items[:10])) + (" ..." if len(items) > 10 else "")


def _report(summary: dict) -> str:
    return "".join(_listed(what, summary[key]) for key, what in (
        ("no_face", "photos with no face"), ("unreadable", "unreadable files"),
        ("skipped_faces", "detections not described")) if summary[key])


def _index(cfg: DictConfig) -> None:
    _required(cfg, "photos", "out")
    summary = index_photos(photos=_photos(cfg), out=cfg.out, pipeline=_pipeline(cfg), identities=cfg.identities,
                           factory=str(cfg.factory), add=bool(cfg.add), progress=bool(cfg.progress),
                           max_pixels=checked_max_pixels(cfg.max_pixels))
    print(f"{summary['index']}: {summary['faces']} faces of {summary['photos']} photos added ({summary['total']} in "
          f"all, {summary['named']} named), {summary['embedding_model']['name']}" + _report(summary)
          + (_listed("names matching no face", summary["unmatched_names"]) if summary["unmatched_names"] else ""))


def _search(cfg: DictConfig) -> None:
    _required(cfg, "index", "photos")
    summary = search_photos(index=cfg.index, photos=_photos(cfg), pipeline=_pipeline(cfg), k=int(cfg.k),
                            threshold=None if cfg.threshold is None else float(cfg.threshold), out_dir=cfg.out,
                            skip_same_photo=bool(cfg.skip_same_photo), progress=bool(cfg.progress),
                            max_pixels=checked_max_pixels(cfg.max_pixels))
    key = value_key(summary["metric"])
    for photo in summary["photos"]:
        for face in photo["faces"]:
            others = ", ".join(f"{m['label']} {m[key]:.3f}" for m in face["matches"][1:])
            value = f" ({key} {face[key]:.3f})" if face[key] is not None else ""
            print(f"{photo['photo']} face {face['face']}: {face['label']}{value}" + (f"  | next: {others}" if others
                                                                                     else ""))
    print(f"{sum(len(p['faces']) for p in summary['photos'])} faces in {len(summary['photos'])} photos searched"
          + (f" -> {cfg.out}/search.json" if cfg.out else "") + _report(summary))


def _cluster(cfg: DictConfig) -> None:
    _required(cfg, "index")
    result = cluster_index(index=cfg.index, out_dir=cfg.out, threshold=float(cfg.threshold), method=str(cfg.method),
                           clusters=None if cfg.clusters is None else int(cfg.clusters), seed=int(cfg.seed),
                           same_photo_apart=bool(cfg.same_photo_apart), progress=bool(cfg.progress))
    for cluster in result["clusters"]:
        if cluster["size"] > 1:
            print(f"cluster {cluster['cluster']}: {cluster['size']} faces in {cluster['photos']} photo(s): "
                  + ", ".join(m["label"] for m in cluster["members"])
                  + (f"  (a photo twice: {', '.join(Path(p).name for p in cluster['same_photo'])})"
                     if cluster["same_photo"] else ""))
    print(f"{result['faces']} faces -> {len(result['clusters'])} clusters ({result['method']}"
          + (f" at {result['threshold']}" if result["threshold"] is not None else "")
          + f"), {result['people_in_several_photos']} in more than one photo, {result['singletons']} alone"
          + (f" -> {cfg.out}/clusters.json" if cfg.out else ""))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="faces")
def _main(cfg: DictConfig) -> None:
    if cfg.command not in COMMANDS:
        raise SystemExit(f"faces: the command is one of {', '.join(COMMANDS)}, got {cfg.command!r}")
    try:
        {"index": _index, "search": _search, "cluster": _cluster}[cfg.command](cfg)
    except (ValueError, FileNotFoundError) as err:  # bad input: the message names it; no traceback
        raise SystemExit(f"faces {cfg.command}: error: {err}") from err


def main() -> None:
    """``tools/faces.py <command> key=value ...``: the first word, when it is a command, is ``command=``
    (Hydra takes only key=value overrides)."""
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        sys.argv[1] = f"command={sys.argv[1]}"
    elif len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        raise SystemExit(f"faces: the command is one of {', '.join(COMMANDS)}, got {sys.argv[1]!r}")
    _main()
