"""Detection pictures: boxes captioned with class and score, drawn on the image."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes

# Distinct, readable box colours (Tableau 10), one per class label modulo 10.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]
# Photos at least this large (pixels, longer side) get lines and captions scaled to their size: a
# 2 px box and torchvision's fixed ~10 px font vanish on a 1920 px photo shown at half size.
LARGE_SIDE = 800
# A TrueType font for scaled captions: matplotlib, a dependency already, ships DejaVu Sans.
CAPTION_FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def save_detections_picture(image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                            class_names: Sequence[str], path: str | Path, width: int = 2, min_side: int = 320,
                            colors: Sequence[str] | None = None, captions: Sequence[str] | None = None) -> Path:
    """Draw detections on an image and save it as a PNG.

    Args:
        image: ``(3, H, W)`` float in [0, 1] or uint8.
        boxes: ``(K, 4)`` xyxy pixels of that image; ``labels`` ``(K,)`` model labels (index into
            ``class_names``); ``scores`` ``(K,)``. Each box is captioned ``name score`` in a colour per class.
        min_side: smaller images are enlarged (nearest neighbour, by a whole factor) before drawing,
            so that captions in torchvision's fixed-size font stay readable.
        colors: one colour per box (e.g. one per person); default one per class.
        captions: one caption per box, in place of ``name score``.

    Photos of :data:`LARGE_SIDE` px or more get lines ``longer side / 400`` px wide and captions in
    DejaVu Sans ``longer side / 60`` px high.
    """
    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    factor = max(1, -(-min_side // min(image.shape[1:])))  # ceil
    if factor > 1:
        image = image.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
        boxes = boxes.detach().cpu().float() * factor
    labels = labels.detach().cpu().tolist()
    if captions is None:
        captions = [f"{class_names[int(c)]} {float(s):.2f}" for c, s in zip(labels, scores.detach().cpu().tolist())]
    captions = list(captions)
    colors = list(colors) if colors is not None else [PALETTE[int(c) % len(PALETTE)] for c in labels]
    side = max(image.shape[1:])
    font = dict(font=CAPTION_FONT, font_size=side // 60) if side >= LARGE_SIDE else {}
    width = max(width, round(side / 400))
    drawn = image if not captions else draw_bounding_boxes(image, boxes.detach().cpu().float(), captions,
                                                             colors=colors, width=width, **font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(path)
    return path
