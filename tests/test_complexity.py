"""Mult-Adds and parameter counts against the MobileNets paper (Tables 2-7, 9, 10).

A printed figure is matched "within rounding of its printed digits": a value printed as 569 M
means |x / 1e6 - 569| <= 0.5, printed as 4.2 M means |x / 1e6 - 4.2| <= 0.05, and so on (the
bound is inclusive). Rounding of the printed figure is the only slack taken; the rows where the
paper's own arithmetic differs are documented where they are tested.
"""
import functools
import json
from pathlib import Path

import pytest
from torch import nn

from mnet_vision.backbones.mobilenet_v1 import DepthwiseSeparable
from mnet_vision.complexity import count_complexity
from mnet_vision.config import CONF_DIR, compose
from mnet_vision.model import DetectorModel, build_model


def half_ulp(printed: str) -> float:
    """Half a unit in the last printed digit: '569' -> 0.5, '4.2' -> 0.05, '94.86' -> 0.005."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return 0.5 * 10.0 ** -decimals


def assert_rounds_to(value: float, printed: str, what: str = "") -> None:
    # a tiny epsilon so that an exact half (e.g. 149.5 vs 149) is not lost to float representation
    assert abs(value - float(printed)) <= half_ulp(printed) + 1e-9, f"{what}: {value} is not {printed} within rounding"


@functools.cache
def measured(*overrides: str):
    """Complexity of the model ``build_model(compose(overrides))`` at the config's input size (cached:
    several tables share the 1.0-224 model)."""
    cfg = compose(list(overrides))
    model = build_model(cfg)
    return count_complexity(model, cfg.task.input_size)


def test_half_ulp():
    assert half_ulp("569") == 0.5 and half_ulp("4.2") == pytest.approx(0.05)
    assert half_ulp("94.86") == pytest.approx(0.005) and half_ulp("1.32") == pytest.approx(0.005)


# ---------------------------------------------------------------------------------------------
# Table 2: resource share per layer type, 1.0 MobileNet-224
# ---------------------------------------------------------------------------------------------

TABLE2 = {  # kind: (Mult-Adds share %, parameter share %) as printed
    "conv_1x1": ("94.86", "74.59"),
    "depthwise_3x3": ("3.06", "1.06"),
    # The paper prints 1.19 % of Mult-Adds for the full 3x3 conv: a digit transposition. Its four
    # printed shares then sum to 99.29 %, while 1.91 % makes them sum to 100.01 %; and the stem's
    # 112 * 112 * 32 * 27 = 10.84 M Mult-Adds are 1.91 % of the model's 568.7 M.
    "conv_3x3": ("1.91", "0.02"),
    "fc": ("0.18", "24.33"),
}


def test_table2_shares():
    c = measured("experiment=imagenet")
    shares = c.shares()
    assert set(shares) == set(TABLE2)
    for kind, (mult_adds_pct, params_pct) in TABLE2.items():
        assert_rounds_to(shares[kind]["mult_adds_pct"], mult_adds_pct, f"{kind} Mult-Adds share")
        assert_rounds_to(shares[kind]["params_pct"], params_pct, f"{kind} parameter share")
    assert sum(s["mult_adds_pct"] for s in shares.values()) == pytest.approx(100.0)
    assert sum(s["params_pct"] for s in shares.values()) == pytest.approx(100.0)


def test_table2_stem_and_fc_counts():
    c = measured("experiment=imagenet")
    assert c.by_type["conv_3x3"]["mult_adds"] == 112 * 112 * 32 * 27
    assert c.by_type["conv_3x3"]["weights"] == c.by_type["conv_3x3"]["params"] == 27 * 32
    assert c.by_type["fc"]["mult_adds"] == 1024 * 1000
    assert c.by_type["fc"]["weights"] == 1024 * 1000
    assert c.by_type["fc"]["params"] == 1024 * 1000 + 1000  # the FC bias counts as a parameter
    # BatchNorm (weight + bias per channel) adds about 0.02 M at alpha 1 and is not counted
    outs = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    bn_channels = 32 + sum([32] + outs[:-1]) + sum(outs)  # stem, then each block's dw (in) and pw (out)
    assert c.params_with_bn - c.params == 2 * bn_channels
    assert_rounds_to((c.params_with_bn - c.params) / 1e6, "0.02", "BatchNorm parameters")


# ---------------------------------------------------------------------------------------------
# Table 3: one layer, DK = 3, M = N = 512, DF = 14
# ---------------------------------------------------------------------------------------------

def _separable(channels: int) -> nn.Module:
    return DepthwiseSeparable(channels, channels, 1, activation=nn.ReLU, bn_eps=1e-5, bn_momentum=0.1)


@pytest.mark.parametrize("name, make_layer, channels, size, mult_adds, params", [
    ("standard conv", lambda: nn.Conv2d(512, 512, 3, padding=1, bias=False), 512, 14, "462", "2.36"),
    ("depthwise separable", lambda: _separable(512), 512, 14, "52.3", "0.27"),
    ("alpha 0.75", lambda: _separable(384), 384, 14, "29.6", "0.15"),
    ("alpha 0.75, rho 0.714", lambda: _separable(384), 384, 10, "15.1", "0.15"),  # 14 * 0.714 = 10
])
def test_table3_single_layer(name, make_layer, channels, size, mult_adds, params):
    layer = make_layer()
    c = count_complexity(layer, size, in_channels=channels)
    assert_rounds_to(c.mult_adds / 1e6, mult_adds, f"{name} Mult-Adds")
    # count_complexity counts conv/FC parameters only; the block's BatchNorms are in params_with_bn
    assert_rounds_to(c.params / 1e6, params, f"{name} params")
    assert c.params_with_bn - c.params == sum(p.numel() for m in layer.modules()
                                              if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert c.input_size == (size, size)


def test_table3_exact_counts():
    dk, m, df = 3, 512, 14
    standard = count_complexity(nn.Conv2d(m, m, dk, padding=1, bias=False), df, in_channels=m)
    assert standard.mult_adds == dk * dk * m * m * df * df
    separable = count_complexity(_separable(m), df, in_channels=m)
    assert separable.mult_adds == dk * dk * m * df * df + m * m * df * df
    assert separable.by_type["depthwise_3x3"]["params"] == dk * dk * m
    assert separable.by_type["conv_1x1"]["params"] == m * m


# ---------------------------------------------------------------------------------------------
# Tables 4-7 and 9: whole models, Mult-Adds (M) and params (M) as printed
# ---------------------------------------------------------------------------------------------

PAPER_ROWS = [  # (id, overrides, Mult-Adds printed, params printed); measured by us in the comment
    ("1.0-224", ("experiment=imagenet",), "569", "4.2"),  # 568.7 / 4.210
    ("0.75-224", ("experiment=imagenet", "backbone.alpha=0.75"), "325", "2.6"),  # 325.4 / 2.569
    ("shallow", ("experiment=imagenet", "backbone.variant=shallow"), "307", "2.9"),  # 307.3 / 2.876
    ("0.5-224", ("experiment=imagenet", "backbone.alpha=0.5"), "149", "1.3"),  # 149.497 / 1.321
    ("0.25-224", ("experiment=imagenet", "backbone.alpha=0.25"), "41", "0.5"),  # 41.0 / 0.465
    ("1.0-192", ("experiment=imagenet", "task.input_size=192"), "418", "4.2"),  # 418.1 / 4.210
    ("1.0-128", ("experiment=imagenet", "task.input_size=128"), "186", "4.2"),  # 186.4 / 4.210
]


@pytest.mark.parametrize("overrides, mult_adds, params", [pytest.param(*r[1:], id=r[0]) for r in PAPER_ROWS])
def test_paper_rows(overrides, mult_adds, params):
    c = measured(*overrides)
    assert_rounds_to(c.mult_adds / 1e6, mult_adds, "Mult-Adds")
    assert_rounds_to(c.params / 1e6, params, "params")


def test_conv_mobilenet_table4():
    # Table 4 prints 4866 M for the full-convolution MobileNet; we count 4867.29 M, 1.3 M (0.027 %)
    # more, so it is not within rounding of the printed digits and we allow 0.05 % relative. The
    # body alone (without the FC layer's 1.02 M) is 4866.27 M, which would print as 4866: the paper
    # seems to have left the FC out of this one figure (its 1.0-224 row, 569 M, includes it:
    # 567.7 M + 1.0 M). No change of architecture is that small, so the layers themselves agree.
    c = measured("experiment=imagenet", "backbone.variant=conv")
    assert c.mult_adds / 1e6 == pytest.approx(4866, rel=5e-4)
    assert_rounds_to((c.mult_adds - c.by_type["fc"]["mult_adds"]) / 1e6, "4866", "conv MobileNet body Mult-Adds")
    assert_rounds_to(c.params / 1e6, "29.3", "params")  # 29.282
    assert set(c.by_type) == {"conv_3x3", "fc"}


RESOLUTION_ROWS = [  # (alpha, input size, printed Mult-Adds of that row, printed params, printed 224 Mult-Adds)
    (1.0, 192, "418", "4.2", "569"),
    (1.0, 160, "290", "4.2", "569"),
    (1.0, 128, "186", "4.2", "569"),
    (0.5, 160, "76", "1.32", "149"),
]


@pytest.mark.parametrize("alpha, size, printed, params, printed_224", RESOLUTION_ROWS,
                         ids=[f"{a}-{s}" for a, s, *_ in RESOLUTION_ROWS])
def test_resolution_rows(alpha, size, printed, params, printed_224):
    """Tables 7 and 9. The paper's resolution rows are its 224 figure times rho^2 (Section 4.2),
    which also scales the FC layer although the FC does not depend on the input size: 569 * (160/224)^2
    = 290.3 -> "290" and 149 * (160/224)^2 = 76.0 -> "76", whereas a direct count gives 290.68 M and
    76.52 M (the FC's 1.02 M / 0.51 M unscaled). So for 1.0-160 and 0.5-160 the printed figure is
    not within rounding of a direct count (off by 0.68 M = 0.23 % and 0.52 M = 0.69 %); we check
    instead that (a) the body scales exactly by rho^2 and the FC stays, and (b) our 224 count times
    rho^2 rounds to the printed figure, which is how the paper got it. 192 and 128 also match directly.
    """
    overrides = ("experiment=imagenet", f"backbone.alpha={alpha}")
    at_224 = measured(*overrides)
    at_size = measured(*overrides, f"task.input_size={size}")
    fc = at_224.by_type["fc"]["mult_adds"]
    assert at_size.by_type["fc"]["mult_adds"] == fc
    # (a) every map of a 224 input is 7 * 2^k wide and size / 32 is whole: exact integer scaling
    assert size % 32 == 0
    assert (at_size.mult_adds - fc) * 7 * 7 == (at_224.mult_adds - fc) * (size // 32) ** 2
    # (b) the paper's derivation: its 224 figure (which ours rounds to) times rho^2
    assert_rounds_to(at_224.mult_adds / 1e6, printed_224, "224 Mult-Adds")
    rho2 = (size / 224) ** 2
    assert_rounds_to(at_224.mult_adds / 1e6 * rho2, printed, "224 Mult-Adds x rho^2")
    assert_rounds_to(float(printed_224) * rho2, printed, "printed 224 Mult-Adds x rho^2")
    # the direct count differs from the printed figure by at most the FC's unscaled part
    direct = at_size.mult_adds / 1e6
    assert abs(direct - float(printed)) <= half_ulp(printed) + fc / 1e6 * (1 - rho2)
    if size in (192, 128):
        assert_rounds_to(direct, printed, "direct Mult-Adds")
    # parameters do not depend on the input size
    assert at_size.params == at_224.params
    assert_rounds_to(at_size.params / 1e6, params, "params")


# ---------------------------------------------------------------------------------------------
# Table 10: Stanford Dogs, 120 classes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, params", [(1.0, "3.3"), (0.75, "1.9")])
def test_table10_dogs_params(alpha, params):
    # Only the parameters are checked: Table 10 repeats the ImageNet Mult-Adds (569 M, 325 M),
    # while a 120-class FC gives 567.8 M and 324.7 M.
    cfg = compose(["experiment=dogs", f"backbone.alpha={alpha}"])
    assert cfg.task.num_classes == 120
    model = build_model(cfg)
    assert model.head.fc.out_features == 120
    c = count_complexity(model, cfg.task.input_size)
    assert_rounds_to(c.params / 1e6, params, "dogs params")  # 3.308 / 1.892


# ---------------------------------------------------------------------------------------------
# Every task config x every backbone
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Table 11: PlaNet on MobileNet, "13 M parameters, about 3 M body and 10 M final layer, 0.58 B Mult-Adds"
# ---------------------------------------------------------------------------------------------


def test_table11_planet_mobilenet():
    """The paper does not print its cell count; 10,000 cells on 1.0 MobileNet-224's 1024 features give
    every figure it prints: a 10.25 M final layer, a 3.2 M body, 13.4 M in all and 0.579 B Mult-Adds
    (PlaNet's own 26,263 cells would need a 26.9 M final layer)."""
    c = measured("task=planet", "data.num_cells=[10000]")
    final = c.by_type["fc"]["params"]
    assert final == 1024 * 10000 + 10000
    assert_rounds_to(final / 1e6, "10", "final layer params")
    assert_rounds_to((c.params - final) / 1e6, "3", "body params")
    assert_rounds_to(c.params / 1e6, "13", "params")
    assert_rounds_to(c.mult_adds / 1e9, "0.58", "Mult-Adds")
    # several partitions: one final layer each, on the same pooled features
    c = measured("task=planet", "data.num_cells=[300,1000,3000]")
    assert c.by_type["fc"]["params"] == 1025 * (300 + 1000 + 3000)


# ---------------------------------------------------------------------------------------------
# Table 12: face-attribute students, 40 attributes as 40 logits on the pooled features
# ---------------------------------------------------------------------------------------------

TABLE12 = [  # (alpha, input size, printed Mult-Adds M, printed body params M); measured in the comment
    (1.0, 224, "568", "3.2"),  # 567.76 M (body 567.72 + head 0.04) / body 3.185 M, with head 3.226 M
    (0.5, 224, "149", "0.8"),  # 149.01 / 0.808, 0.828
    (1.0, 128, "185", "3.2"),  # 185.42 / 3.185, 3.226
]


@pytest.mark.parametrize("alpha, size, mult_adds, body_params", TABLE12, ids=[f"{a}-{s}" for a, s, *_ in TABLE12])
def test_table12_rows(alpha, size, mult_adds, body_params):
    c = measured("task=attributes", "data=celeba", f"backbone.alpha={alpha}", f"task.input_size={size}")
    assert c.by_type["fc"]["params"] == int(1024 * alpha) * 40 + 40
    assert_rounds_to(c.mult_adds / 1e6, mult_adds, "Mult-Adds")
    assert_rounds_to((c.params - c.by_type["fc"]["params"]) / 1e6, body_params, "body params")
    assert_rounds_to(c.params / 1e6, body_params, "params with the 40-attribute head")


def test_table12_rows_the_paper_prints_otherwise():
    """Three rows do not follow from the architecture. 0.5-128 is printed 48 M: we count 48.67 M,
    which is also what 0.5-224's 149 M scaled by (128/224)^2 gives (48.7), so the printed figure is
    rounded down; we hold it to 1.5 %. 0.25-224 and 0.25-128 are printed 45 and 15 M, but Table 1's
    body at width 0.25 gives 40.7 and 13.3 M (Table 6's own 0.25-224 row is 41 M with a 1000-way
    FC): we assert our counts, 40.78 and 13.32 M with the head, and the paper's 0.2 M params."""
    c = measured("task=attributes", "data=celeba", "backbone.alpha=0.5", "task.input_size=128")
    assert c.mult_adds / 1e6 == pytest.approx(48, rel=0.015)
    assert_rounds_to(c.mult_adds / 1e6, "48.67", "0.5-128 Mult-Adds")
    for size, ours in ((224, "40.78"), (128, "13.32")):
        c = measured("task=attributes", "data=celeba", "backbone.alpha=0.25", f"task.input_size={size}")
        assert_rounds_to(c.mult_adds / 1e6, ours, f"0.25-{size} Mult-Adds")
        assert_rounds_to(c.params / 1e6, "0.2", f"0.25-{size} params")


# Every shipped model config, as the override that picks it: the recipes (task/) and the demos and
# dataset presets (experiment/).
TASKS = sorted([f"task={p.stem}" for p in (CONF_DIR / "task").glob("*.yaml")]
               + [f"experiment={p.stem}" for p in (CONF_DIR / "experiment").glob("*.yaml")])
BACKBONES = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
# Configs of imported weights: their backbone settings (TF SAME padding, TF's BatchNorm epsilon) are
# MobileNet V1's, as the weights are; another backbone under them is meaningless.
V1_ONLY = {"experiment=faceapi_ssd"}
PAIRS = [(task, backbone) for task in TASKS for backbone in BACKBONES
         if task not in V1_ONLY or backbone == "mobilenet_v1"]
# Recipes whose data names its columns (data=attributes_csv: data.num_attributes is ???): counted with
# the values a user gives, here two binary attributes beside an age regression and a gender output.
GIVEN = {"task=attribute_outputs": ["data.num_attributes=2", "task.regression={age:{center:35,scale:15}}",
                                    "task.categorical={gender:[male,female]}"]}


def test_task_list_is_complete():
    assert {"experiment=imagenet", "experiment=dogs", "experiment=shapes", "task=classification", "task=ssd300",
            "task=shapes_ssd", "task=faster_rcnn_300", "task=faster_rcnn_600", "task=facenet_triplet",
            "experiment=facenet_distill"} <= set(TASKS)
    assert set(BACKBONES) == {p.stem for p in (Path(CONF_DIR) / "backbone").glob("*.yaml")}


@pytest.mark.parametrize(("task", "backbone"), PAIRS)
def test_every_task_and_backbone_counts(task, backbone):
    cfg = compose([task, f"backbone={backbone}", "backbone.alpha=0.25", *GIVEN.get(task, [])])
    model = build_model(cfg)
    c = count_complexity(model, cfg.task.input_size)
    assert c.mult_adds > 0 and c.params > 0
    assert c.params_with_bn >= c.params
    assert c.input_size == (cfg.task.input_size, cfg.task.input_size)
    if isinstance(model, DetectorModel):  # SSD predicts with 1x1 convs, Faster-RCNN with an FC pair
        assert c.by_type["conv_1x1"]["mult_adds"] > 0
    else:
        key = next(k for k in ("num_classes", "num_attributes", "embedding_dim", "num_cells") if k in cfg.task)
        outputs = sum(cfg.task.num_cells) if key == "num_cells" else cfg.task[key]  # one final layer per partition
        assert c.by_type["fc"]["mult_adds"] >= outputs
    d = json.loads(json.dumps(c.to_dict()))
    assert d["mult_adds"] == c.mult_adds and d["params"] == c.params
    assert set(d["by_type"]) == set(c.by_type)
    assert "| **total** |" in c.table()


def test_count_complexity_restores_training_mode():
    model = build_model(compose(["experiment=shapes", "backbone.alpha=0.25"]))
    model.train()
    count_complexity(model, 64)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    count_complexity(model, 64)
    assert not model.training


def test_rectangular_input_size():
    model = build_model(compose(["experiment=shapes", "backbone.alpha=0.25"]))
    c = count_complexity(model, (64, 96))
    assert c.input_size == (64, 96)
    assert c.by_type["conv_3x3"]["mult_adds"] == 32 * 48 * 8 * 27
