"""Evaluation metrics: COCO mAP (pycocotools), face verification, attribute AP, geolocation accuracy."""
