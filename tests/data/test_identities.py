import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mnet_vision.data.identities import IdentityFolderDataModule, IdentityFolderDataset
from mnet_vision.images import read_rgb
from mnet_vision.data.sampling import PKBatchSampler
from mnet_vision.data.synthetic.datamodules import SyntheticIdentityDataModule
from mnet_vision.data.synthetic.identities import make_identity_dataset

IDENTITIES = {"train": 8, "val": 4, "test": 4}
PER_IDENTITY = {"train": 4, "val": 3, "test": 3}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A tiny synthetic identity set: 8 training people x 4 images, 4 x 3 for val and test, 32 px."""
    return make_identity_dataset(tmp_path_factory.mktemp("ids") / "faces", IDENTITIES, PER_IDENTITY,
                                 image_size=32, pairs_per_fold=2)


@pytest.fixture
def tree(tmp_path, faces):
    """A copy of the tiny set the test may damage."""
    return shutil.copytree(faces, tmp_path / "faces")


def _module(root, **kw):
    kw = {"input_size": 32, "batch_size": 8, "images_per_identity": 2, "pairs": {"val": "pairs_val.txt"}, **kw}
    return IdentityFolderDataModule(str(root), **kw)


def _assert_pk(labels, p, k):
    """``labels`` (in batch order) are ``p`` distinct identities, ``k`` consecutive samples each."""
    labels = list(labels)
    assert len(labels) == p * k and len(set(labels)) == p
    assert all(len(set(labels[i:i + k])) == 1 for i in range(0, p * k, k))


# --- dataset -------------------------------------------------------------------------------------------

def test_dataset_items_ids_and_labels(faces):
    ds = IdentityFolderDataset(faces / "train")
    assert len(ds) == 32 and ds.classes[0] == "id00000" and ds.image_extension == "png"
    assert ds.labels == [i // 4 for i in range(32)]
    assert ds.ids[:2] == ["id00000/id00000_0001.png", "id00000/id00000_0002.png"]
    item = ds[5]
    assert (item["label"], item["id"]) == (1, "id00001/id00001_0002.png")
    assert item["path"] == str(faces / "train" / "id00001" / "id00001_0002.png")


def test_bad_layouts_name_the_folder_and_layout(tmp_path, tree):
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist.*<root>/<split>/<identity>/\*\.jpg"):
        IdentityFolderDataset(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"flat has no class sub-folders.*for face identities"):
        IdentityFolderDataset(tmp_path / "flat")
    for f in (tree / "train" / "id00003").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match=r"id00003.*for face identities"):
        IdentityFolderDataset(tree / "train")
    with pytest.raises(FileNotFoundError, match=r"data root .*missing does not exist; expected layout"):
        _module(tmp_path / "missing").setup("fit")


# --- PK sampler ----------------------------------------------------------------------------------------

LABELS = [i // 4 for i in range(32)]  # 8 identities x 4 samples


class _Keys(Dataset):
    """Returns the ``(index, seed)`` key it is asked for: a loader over it yields the sampler's batches."""

    def __len__(self) -> int:
        return len(LABELS)

    def __getitem__(self, key):
        return key


def _key_loader() -> DataLoader:
    return DataLoader(_Keys(), batch_sampler=PKBatchSampler(LABELS, 8, 2), collate_fn=list)


def test_pk_batches_hold_p_identities_of_k_samples():
    sampler = PKBatchSampler(LABELS, batch_size=8, images_per_identity=2, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4  # len(labels) // batch_size
    for batch in batches:
        assert all(isinstance(seed, int) for _, seed in batch)
        indices = [index for index, _ in batch]
        assert len(set(indices)) == 8  # 4 images per identity >= K: no repeats
        _assert_pk([LABELS[i] for i in indices], p=4, k=2)


def test_pk_batches_depend_only_on_seed_and_epoch():
    sampler = PKBatchSampler(LABELS, 8, 2, seed=3)
    torch.manual_seed(1)
    first = list(sampler)
    torch.manual_seed(2)
    assert list(sampler) == first  # the global RNG plays no part
    assert list(PKBatchSampler(LABELS, 8, 2, seed=3)) == first
    assert list(PKBatchSampler(LABELS, 8, 2, seed=4)) != first
    sampler.set_epoch(1)
    assert list(sampler) != first


class _RecordBatches(LightningModule):
    """Records the batches of every training epoch (``seen[epoch]``); learns nothing."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.seen: dict[int, list] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).append(batch)
        return self.weight * 0.0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_lightning_sets_the_epoch_of_the_pk_batches():
    model = _RecordBatches()  # Lightning's fit loop calls the batch sampler's set_epoch each epoch
    Trainer(max_epochs=6, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False).fit(model, train_dataloaders=_key_loader())
    epoch0 = model.seen[0]
    expected = PKBatchSampler(LABELS, 8, 2)
    expected.set_epoch(5)
    assert model.seen[5] == list(expected) != epoch0


def test_under_ddp_each_process_gets_its_share_of_whole_pk_batches():
    # Lightning re-creates the batch sampler with its arguments and its sampler wrapped for DDP
    # (sampler=DistributedSamplerWrapper(...)); this replays that through the public constructor.
    loader = _key_loader()
    single = list(PKBatchSampler(LABELS, 8, 2))
    shares = []
    for rank in (0, 1):
        wrapped = DistributedSamplerWrapper(loader.batch_sampler.sampler, num_replicas=2, rank=rank, shuffle=False)
        shares.append(list(PKBatchSampler(LABELS, 8, 2, sampler=wrapped)))
    assert [len(s) for s in shares] == [2, 2]
    assert sorted(shares[0] + shares[1]) == sorted(single)


def test_small_identities_fill_up_and_singletons_never_anchor():
    labels = [0, 1, 1, 2, 2, 2, 3, 3]  # identity 0 has one image, 1 and 3 fewer than K=3
    for batch in PKBatchSampler(labels, 6, 3, seed=0):
        indices = [index for index, _ in batch]
        assert 0 not in indices
        _assert_pk([labels[i] for i in indices], p=2, k=3)
        for identity, pool in ((1, {1, 2}), (3, {6, 7})):
            if identity in {labels[i] for i in indices}:
                assert {i for i in indices if labels[i] == identity} == pool  # all it has, then repeats


def test_pk_arguments_are_checked():
    with pytest.raises(ValueError, match="multiple of images_per_identity"):
        PKBatchSampler(LABELS, 9, 2)
    with pytest.raises(ValueError, match="at least 2"):
        PKBatchSampler(LABELS, 8, 1)
    with pytest.raises(ValueError, match="holds 10 identities.*the 8 identities with 2 or more images"):
        PKBatchSampler(LABELS, 20, 2)


# --- data module ---------------------------------------------------------------------------------------

def test_train_batches_are_pk_with_ids(faces):
    dm = _module(faces)
    dm.setup("fit")
    assert dm.num_identities == 8
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    batch = batches[0]
    assert batch["image"].shape == (8, 3, 32, 32) and batch["label"].dtype == torch.int64
    assert isinstance(batch["id"], list) and isinstance(batch["path"], list) and batch["skipped"] == []
    _assert_pk(batch["label"].tolist(), p=4, k=2)
    assert all(i.split("/")[0] == dm.dataset("train").classes[label] for i, label in zip(batch["id"], batch["label"]))


def test_eval_loader_keeps_order_and_facenet_standardisation(faces):
    dm = _module(faces)
    dm.setup("validate")
    batches = list(dm.val_dataloader())
    assert [i for b in batches for i in b["id"]] == dm.sample_ids("val") == dm.dataset("val").ids
    first = batches[0]
    expected = (read_rgb(first["path"][0]).astype(np.float32) - 127.5) / 128  # FaceNet's fixed standardisation
    assert torch.allclose(first["image"][0], torch.from_numpy(expected).permute(2, 0, 1), atol=1e-5)


def test_pairs_are_read_against_the_split(faces):
    dm = _module(faces, pairs={"val": str(faces / "pairs_val.txt")})  # absolute paths work too
    pairs = dm.pairs("val")
    assert len(pairs) == 40 and pairs.missing == []
    assert {str(p) for p in pairs.first + pairs.second} <= {str(p) for p, _ in dm.dataset("val").samples}
    assert dm.pairs("train") is None and dm.pairs("test") is None


def test_missing_pair_image_is_counted(tree):
    name, number = (tree / "pairs_val.txt").read_text().splitlines()[1].split("\t")[:2]
    (tree / "val" / name / f"{name}_{int(number):04d}.png").unlink()
    pairs = _module(tree).pairs("val")
    assert 2 in pairs.missing and len(pairs) + len(pairs.missing) == 40


def test_test_split_falls_back_to_val(tree):
    shutil.rmtree(tree / "test")
    dm = _module(tree)
    dm.setup("test")
    assert dm.dataset("test") is dm.dataset("val") and len(dm.pairs("test")) == 40


def test_missing_pairs_file_fails_at_setup(faces):
    with pytest.raises(FileNotFoundError, match="LFW pairs file .*nope.txt does not exist"):
        _module(faces, pairs={"val": "nope.txt"}).setup("validate")
    with pytest.raises(ValueError, match="pairs keys"):
        _module(faces, pairs={"lfw": "pairs.txt"})


def test_unreadable_image_is_a_counted_skip(tree):
    bad = tree / "val" / "id00008" / "id00008_0001.png"
    bad.write_bytes(b"\x89PNG junk")
    batches = list(_module(tree).val_dataloader())
    assert [s for b in batches for s in b["skipped"]] == [str(bad)]
    assert sum(len(b["id"]) for b in batches) == 11


def test_synthetic_module_generates_set_and_pairs(tmp_path):
    dm = SyntheticIdentityDataModule(str(tmp_path / "s"), identities={"train": 4, "val": 2, "test": 2},
                                     per_identity={"train": 2, "val": 2, "test": 2}, image_size=16, pairs_per_fold=1,
                                     input_size=16, batch_size=4, images_per_identity=2)
    dm.prepare_data()
    dm.setup()
    assert dm.num_identities == 4 and len(dm.pairs("val")) == len(dm.pairs("test")) == 20
    assert next(iter(dm.train_dataloader()))["image"].shape == (4, 3, 16, 16)


def test_config_builds_the_synthetic_module(tmp_path):
    from hydra.utils import instantiate

    from mnet_vision.config import compose

    cfg = compose(["data=synthetic_identities", "experiment=shapes", f"data.root={tmp_path}"])
    assert cfg.data.input_size == cfg.task.input_size and cfg.data.std[0] == pytest.approx(128 / 255)
    dm = instantiate(cfg.data)
    assert isinstance(dm, SyntheticIdentityDataModule)
    assert dm.pairs_files == {"val": "pairs_val.txt", "test": "pairs_test.txt"}
    assert Counter(dm.generator_args["identities"]) == Counter({"train": 300, "val": 60, "test": 100})
