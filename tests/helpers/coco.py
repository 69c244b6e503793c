"""A tiny COCO ground truth whose scores are known by construction, and its perfect results."""

# Two images; category ids with a gap (1 and 7) as in COCO. All three boxes are "medium" (32^2..96^2).
GT = {
    "images": [{"id": 1, "width": 200, "height": 200, "file_name": "a.png"},
               {"id": 2, "width": 200, "height": 200, "file_name": "b.png"}],
    "categories": [{"id": 1, "name": "circle"}, {"id": 7, "name": "square"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "area": 2500, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [100, 100, 40, 40], "area": 1600, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [20, 30, 60, 40], "area": 2400, "iscrowd": 0},
    ],
}


def perfect_results(shift=(0, 0, 0)):
    """COCO results that repeat GT's boxes at score 0.9, box i moved right by ``shift[i]`` pixels."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9,
             "bbox": [a["bbox"][0] + s, a["bbox"][1], a["bbox"][2], a["bbox"][3]]}
            for a, s in zip(GT["annotations"], shift)]
