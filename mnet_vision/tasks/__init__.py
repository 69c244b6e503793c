"""One LightningModule per task family."""
from mnet_vision.tasks.classification import ClassificationTask
from mnet_vision.tasks.detection import DetectionTask

__all__ = ["ClassificationTask", "DetectionTask"]
