import numpy as np
import pytest
import torch

from mnet_vision.data.transforms import apply_seeded
from mnet_vision.inference.load import load_model
from mnet_vision.predict.predictors import AttributeScorer, Predictor, model_info


def test_attribute_scores_are_the_sigmoid_of_the_models_logits(attribute_run):
    ckpt = attribute_run["best_checkpoint"]
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8) for i in range(3)]
    probs, records = AttributeScorer(ckpt).score(arrays)
    loaded = load_model(ckpt, fast=False)
    transform = loaded.meta.eval_transform()
    with torch.inference_mode():
        logits = loaded.model(torch.stack([apply_seeded(transform, 0, image=a)["image"] for a in arrays]))
    np.testing.assert_allclose(probs, torch.sigmoid(logits).numpy(), atol=1e-4)  # fast path vs as trained
    assert [len(r["attributes"]) for r in records] == [17] * 3 and "outputs" not in records[0]


def test_a_checkpoint_of_another_task_is_refused_by_name(attribute_run, embedding_run):
    with pytest.raises(ValueError, match="is a AttributeTask checkpoint; face search needs an embedding model"):
        Predictor("embeddings", attribute_run["best_checkpoint"])
    with pytest.raises(ValueError, match="is a EmbeddingTask checkpoint; attributes need task=attributes"):
        Predictor("attributes", embedding_run["best_checkpoint"])
    info = model_info("detections", embedding_run["best_checkpoint"], score=0.5)
    assert info["task"] == "DetectionTask" and info["settings"] == {"score": 0.5} and len(info["sha256"]) == 64
    with pytest.raises(ValueError, match=r"score=1.5: expected a threshold in \[0, 1\]"):
        model_info("detections", embedding_run["best_checkpoint"], score=1.5)
    with pytest.raises(ValueError, match="top_k=0"):
        model_info("geolocation", embedding_run["best_checkpoint"], top_k=0)
