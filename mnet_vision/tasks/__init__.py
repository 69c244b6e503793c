"""One LightningModule per task family, and the distillation wrapper around any of them."""
from mnet_vision.tasks.attributes import AttributeTask
from mnet_vision.tasks.classification import ClassificationTask
from mnet_vision.tasks.detection import DetectionTask
from mnet_vision.tasks.distillation import DistillationTask
from mnet_vision.tasks.embedding import EmbeddingTask
from mnet_vision.tasks.geolocation import GeolocationTask

__all__ = ["AttributeTask", "ClassificationTask", "DetectionTask", "DistillationTask", "EmbeddingTask",
           "GeolocationTask"]
