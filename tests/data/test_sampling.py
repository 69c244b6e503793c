from mnet_vision.data.sampling import EpochSampler


def test_order_and_seeds_are_a_function_of_seed_and_epoch():
    a, b = EpochSampler(20, seed=1), EpochSampler(20, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    assert sorted(i for i, _ in a) == list(range(20))
    b.set_epoch(4)
    assert list(a) != list(b)
    assert list(EpochSampler(20, seed=2)) != list(EpochSampler(20, seed=1))


def test_no_shuffle_keeps_order():
    assert [i for i, _ in EpochSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]
