"""Run config values checked before anything is built: the key is named, not a library's internals."""
import pytest

from mnet_vision.config import ConfigValueError, check_run_config, compose
from mnet_vision.training import build_task
from tests.helpers.configs import tiny_overrides


def test_the_shipped_configs_pass():
    for config in ("experiment=shapes", "task=shapes_ssd", "task=ssd300", "task=planet", "task=attributes",
                   "task=facenet_triplet", "task=faster_rcnn_300"):
        check_run_config(compose([config]))


@pytest.mark.parametrize("override, message", [
    ("seed=abc", r"seed='abc' is not valid: expected a whole number"),
    ("seed=1.5", r"seed=1\.5"),
    ("task.input_size=0", r"task\.input_size=0 is not valid"),
    ("data.batch_size=-2", r"data\.batch_size=-2"),
    ("data.num_workers=true", r"data\.num_workers=True"),
    ("data.num_classes=1", r"task\.num_classes=1 \(from data\.num_classes\) is not valid for ClassificationTask: "
                           r"expected a whole number >= 2"),
])
def test_bad_values_name_their_key(shapes_root, override, message):
    with pytest.raises(ConfigValueError, match=message):
        build_task(compose(tiny_overrides(shapes_root, override)))


def test_one_object_class_is_fine_for_a_detector():
    check_run_config(compose(["data.num_classes=1"]))  # the default job is SSD
    with pytest.raises(ConfigValueError, match="DetectionTask: expected a whole number >= 1"):
        check_run_config(compose(["data.num_classes=0"]))
