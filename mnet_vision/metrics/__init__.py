"""Evaluation metrics: COCO detection mAP through pycocotools (more per task to come)."""
