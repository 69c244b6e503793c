"""GeoCellHead: one classifier per partition, the cells in its buffers, the hierarchical product."""
import numpy as np
import pytest
import torch

from mnet_vision.backbones import Tap
from mnet_vision.geo.cells import GeoCellPartition, build_partitions
from mnet_vision.geo.s2 import range_max, range_min
from mnet_vision.heads import GeoCellHead
from mnet_vision.heads.geocells import crop_log_probabilities, located_logits

TAPS = {"conv13": Tap(8, 32)}


def _photos(seed: int = 0):
    """Clusters around five cities, so partitions have a few dense and a few sparse cells."""
    rng = np.random.default_rng(seed)
    centres = np.array([[48.86, 2.35], [40.71, -74.0], [35.68, 139.69], [-33.87, 151.21], [-1.29, 36.82]])
    sizes = [1200, 900, 700, 300, 150]
    lat = np.concatenate([rng.normal(c[0], 2.0, n) for c, n in zip(centres, sizes)])
    lon = np.concatenate([rng.normal(c[1], 2.0, n) for c, n in zip(centres, sizes)])
    return lat, lon


@pytest.fixture(scope="module")
def partitions():
    lat, lon = _photos()
    return [p for p, _ in build_partitions(lat, lon, [800, 200], t_min=10, progress=False)]


def _head(partitions) -> GeoCellHead:
    head = GeoCellHead(TAPS, [len(p) for p in partitions], dropout=0.0)
    head.set_partitions(partitions)
    return head


def test_one_classifier_per_partition(partitions):
    head = _head(partitions)
    logits = head({"conv13": torch.randn(3, 8, 2, 2)})
    assert [tuple(x.shape) for x in logits] == [(3, len(p)) for p in partitions]
    assert len(partitions[0]) < len(partitions[1])


def test_ancestors_contain_their_fine_cells(partitions):
    head = _head(partitions)
    coarse, fine = partitions
    parent = head.ancestors[:, 0].numpy()
    assert (range_min(coarse.cell_ids[parent]) <= range_min(fine.cell_ids)).all()
    assert (range_max(fine.cell_ids) <= range_max(coarse.cell_ids[parent])).all()
    assert head.ancestors[:, 1].tolist() == list(range(len(fine)))


def test_hierarchical_product_known_by_construction(partitions):
    head = _head(partitions)
    coarse, fine = partitions
    n_fine = len(fine)
    # the fine classifier alone prefers cell 0 a little; the coarse one is sure of another region
    target_region = int(head.ancestors[-1, 0])
    assert target_region != int(head.ancestors[0, 0])
    fine_logits = torch.zeros(1, n_fine)
    fine_logits[0, 0] = 0.5
    coarse_logits = torch.full((1, len(coarse)), -10.0)
    coarse_logits[0, target_region] = 10.0
    log_p = head.log_probabilities([coarse_logits, fine_logits])
    assert torch.exp(log_p).sum().item() == pytest.approx(1.0, abs=1e-5)
    best = int(log_p.argmax())
    assert int(head.ancestors[best, 0]) == target_region
    # by hand: each fine cell's score is p_coarse(ancestor) * p_fine(cell), renormalised
    by_hand = coarse_logits.log_softmax(-1)[0, head.ancestors[:, 0]] + fine_logits.log_softmax(-1)[0]
    torch.testing.assert_close(log_p[0], by_hand.log_softmax(-1))
    # one partition: its own log-softmax
    single = GeoCellHead(TAPS, [n_fine])
    torch.testing.assert_close(single.log_probabilities([fine_logits]), fine_logits.log_softmax(-1))


def test_cells_travel_in_the_state_dict(partitions):
    head = _head(partitions)
    restored = GeoCellHead(TAPS, [len(p) for p in partitions])
    assert not restored.has_partitions
    restored.load_state_dict(head.state_dict())
    assert restored.has_partitions
    again = restored.partition(-1)
    fine = partitions[-1]
    assert (again.cell_ids == fine.cell_ids).all() and (again.counts == fine.counts).all()
    np.testing.assert_allclose(again.lat_mean, fine.lat_mean)
    np.testing.assert_allclose(again.lat_center, fine.lat_center, atol=1e-9)
    restored.set_partitions(partitions)  # the same files: accepted


def test_partition_with_another_cell_count_names_the_file(partitions, tmp_path):
    coarse, fine = partitions
    path = fine.to_csv(tmp_path / "fine.csv")
    head = GeoCellHead(TAPS, [len(coarse), len(fine) + 3])
    with pytest.raises(ValueError, match=rf"{path}.* has {len(fine)} cells but the model's classifier 1 has "
                                         rf"{len(fine) + 3} outputs"):
        head.set_partitions([coarse, GeoCellPartition.read_csv(path)])
    with pytest.raises(ValueError, match=r"2 cell classifier\(s\).*1 partition file"):
        head.set_partitions([coarse])


def test_checkpoint_cells_differ_from_the_file(partitions, tmp_path):
    coarse, fine = partitions
    head = _head(partitions)
    head.cell_ids_1[3] = head.cell_ids_1[4]  # as if trained on a partition whose class 3 is another cell
    path = fine.to_csv(tmp_path / "fine.csv")
    with pytest.raises(ValueError, match=rf"{path} is not the partition this model was trained with: class 3 is cell "
                                         rf"{fine.tokens[3]} there but {fine.tokens[4]} in the model \(1 of"):
        head.set_partitions([coarse, GeoCellPartition.read_csv(path)])


def test_needs_cells_and_one_tap():
    with pytest.raises(ValueError, match="at least one partition"):
        GeoCellHead(TAPS, [])
    with pytest.raises(ValueError, match="exactly one tap"):
        GeoCellHead({"a": Tap(8, 16), "b": Tap(8, 32)}, [4])


def test_crops_keep_each_cells_best_probability():
    """Two photos of two crops each, one partition of three cells: each cell's score is its highest
    log-probability over the photo's crops (TIB's max over FiveCrop's softmaxes)."""
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    (best,) = crop_log_probabilities([probs.log()], crops=2)
    assert best.exp().flatten().tolist() == pytest.approx([0.7, 0.3, 0.6, 0.4, 0.5, 0.3])


def test_located_logits_of_crops_are_the_crops_own_then_maxed(partitions):
    torch.manual_seed(0)
    head = _head(partitions).eval()
    model = lambda x: head({"conv13": x})  # noqa: E731  (the head on (N, 8, 2, 2) features stands in for a model)
    crops = torch.randn(2, 5, 8, 2, 2)
    scores = located_logits(model, crops)
    expected = crop_log_probabilities(model(crops.flatten(0, 1)), 5)
    assert [s.shape for s in scores] == [(2, len(p)) for p in partitions]
    assert all(torch.equal(s, e) for s, e in zip(scores, expected))
    assert all(torch.equal(s, e) for s, e in zip(located_logits(model, crops[:, 0]), model(crops[:, 0])))
