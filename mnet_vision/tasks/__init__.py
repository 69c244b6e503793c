"""One LightningModule per task family."""
from mnet_vision.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
