"""Keeping one row per photo of states gathered from processes that scored some photos twice."""
import pytest
import torch

from mnet_vision.metrics.photo_ids import PhotoValues, check_photo_ids, once_each


def test_once_each_keeps_the_first_row_of_each_photo_in_id_order():
    # two processes' batches as a padded sampler deals 5 photos: rank 1 gets photo 0 again
    gathered = torch.tensor([0, 2, 4, 1, 3, 0])
    assert once_each(gathered).tolist() == [0, 3, 1, 4, 2]
    assert gathered[once_each(gathered)].tolist() == [0, 1, 2, 3, 4]
    assert once_each(torch.zeros(0, dtype=torch.long)).tolist() == []


def test_photo_ids_must_be_one_per_photo():
    check_photo_ids(torch.arange(3), 3)
    with pytest.raises(ValueError, match=r"one id per photo: shape \(2,\) for 3 photos"):
        check_photo_ids(torch.arange(2), 3)
    with pytest.raises(ValueError, match="one id per photo"):
        check_photo_ids(torch.arange(3)[:, None], 3)


def test_photo_values_per_name_each_photo_once():
    metric = PhotoValues(["hit", "unused"])
    metric.update("hit", torch.tensor([True, False]), torch.tensor([1, 2]))
    metric.update("hit", torch.tensor([False, True]), torch.tensor([0, 1]))  # photo 1 again, from the padding
    gathered = metric.compute()
    assert set(gathered) == {"hit"} and gathered["hit"].tolist() == [0.0, 1.0, 0.0]
