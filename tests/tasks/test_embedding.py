"""Triplet loss with semi-hard mining on cases worked out by hand."""
import pytest
import torch

from mnet_vision.tasks.embedding import semihard_triplet_loss

# Points on a line, labels [0, 0, 1, 1]; squared distances d01=1, d02=2.25, d03=9, d12=0.25, d13=4, d23=2.25.
LINE = torch.tensor([[0.0], [1.0], [1.5], [3.0]])
LABELS = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize("margin, expected, active", [
    # (0,1): closest negative beyond d_ap=1 is 2.25 -> 0; (1,0): beyond 1 is 4 -> 0;
    # (2,3): no negative beyond 2.25 (2.25 is not beyond) -> farthest inside 2.25 -> margin;
    # (3,2): beyond 2.25 is 4 -> 0
    (0.2, 0.2 / 4, 0.25),
    # margin 2: (0,1) 1-2.25+2=0.75, (1,0) 1-4+2=0 -> 0, (2,3) 2, (3,2) 2.25-4+2=0.25
    (2.0, (0.75 + 0 + 2 + 0.25) / 4, 0.75),
])
def test_semihard_choice_and_value(margin, expected, active):
    loss, share = semihard_triplet_loss(LINE, LABELS, margin)
    assert loss.item() == pytest.approx(expected)
    assert share.item() == pytest.approx(active)


def test_gradient_pulls_positives_and_pushes_the_chosen_negative():
    x = LINE.clone().requires_grad_(True)
    semihard_triplet_loss(x, LABELS, 0.2)[0].backward()
    # only triplet (anchor 2, positive 3, negative 0) is active: loss = (d23 - d20 + margin) / 4, so
    # descent moves 3 towards 2 (grad +0.75), 2 towards 3 and away from 0 (-1.5), 0 away from 2 (+0.75)
    torch.testing.assert_close(x.grad[:, 0], torch.tensor([0.75, 0.0, -1.5, 0.75]))


def test_no_pairs_give_zero_loss_with_a_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    loss, share = semihard_triplet_loss(x, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0 and share.item() == 0.0
    loss.backward()  # still part of the graph: a batch without pairs does not break training
    same = torch.zeros(3, dtype=torch.long)  # one identity: no negatives
    assert semihard_triplet_loss(x, same)[0].item() == 0.0


def test_evaluate_on_an_lfw_layout_through_the_identities_config(embedding_run, tmp_path):
    """A model trained on the synthetic set, scored on an LFW-style folder with its pairs.txt the
    way a user scores real LFW: data=identities swaps in the real-data config."""
    from pathlib import Path

    from mnet_vision.training import evaluate

    root = Path(embedding_run["run_dir"]).parent / "data"
    metrics = evaluate(embedding_run["best_checkpoint"], "test",
                       {"data": {"root": str(root), "pairs": {"test": "pairs_test.txt"}, "batch_size": 16}},
                       out_dir=tmp_path,
                       data="identities")
    assert metrics["test/pairs"] == 40 and metrics["test/pairs_missing"] == 0
    # the same images, model and batches (batch size 16 as in training: float sums depend on it)
    assert metrics["test/auc"] == pytest.approx(embedding_run["test/auc"])
    assert (tmp_path / "roc_test.png").is_file()
