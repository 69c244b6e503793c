"""mnet_vision.tfjs.weights: known values worked by hand, tfjs-core's own decoding of every bit
pattern and of the real face-api weights (tests/data/oracles/tfjs_weights/, made by decode.js with
tfjs-core 4.22.0), and every bad manifest and shard."""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from mnet_vision.tfjs.weights import TFJSWeightsError, WeightSpec, read_manifest, read_weights
from tests.helpers.pretrained import faceapi_package

ORACLE = Path(__file__).parents[1] / "data" / "oracles" / "tfjs_weights" / "faceapi-1.7.15.json"
FACEAPI_MANIFESTS = [
    "age_gender_model-weights_manifest.json",
    "face_expression_model-weights_manifest.json",
    "face_landmark_68_model-weights_manifest.json",
    "face_landmark_68_tiny_model-weights_manifest.json",
    "face_recognition_model-weights_manifest.json",
    "ssd_mobilenetv1_model-weights_manifest.json",
    "tiny_face_detector_model-weights_manifest.json",
]


def write_model(folder: Path, groups: list, shards: dict[str, bytes], name: str = "model-weights_manifest.json"):
    """A manifest ``name`` holding ``groups`` (written as given, so bad ones too) and the shard
    files ``shards`` in ``folder``; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard, data in shards.items():
        (folder / shard).write_bytes(data)
    manifest = folder / name
    manifest.write_text(json.dumps(groups))
    return manifest


def one_tensor(folder: Path, entry: dict, data: bytes) -> Path:
    return write_model(folder, [{"paths": ["w.bin"], "weights": [entry]}], {"w.bin": data})


def sha256(array: np.ndarray) -> str:
    """sha256 of the values' little-endian bytes, as decode.js hashes tfjs's typed arrays."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return hashlib.sha256(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def oracle() -> dict:
    return json.loads(ORACLE.read_text())


# --- known values -------------------------------------------------------------------------------

def test_uint8_float32_is_double_arithmetic_rounded_to_float32(tmp_path):
    # scale 0.1, min -0.3 in float64: 0 -> -0.3; 3 -> 0.30000000000000004 - 0.3 = 2**-54 (float32
    # arithmetic would give exactly 0 here); 10 -> 1.0 - 0.3 = 0.7; 255 -> 25.5 - 0.3 = 25.2.
    entry = {"name": "w", "shape": [2, 2], "dtype": "float32",
             "quantization": {"dtype": "uint8", "scale": 0.1, "min": -0.3}}
    w = read_weights(one_tensor(tmp_path, entry, bytes([0, 3, 10, 255])))["w"]
    assert w.dtype == np.float32 and w.shape == (2, 2)
    np.testing.assert_array_equal(w, np.array([[-0.3, 2.0**-54], [0.7, 25.2]], dtype=np.float32))
    in_float32 = np.float32(3) * np.float32(0.1) + np.float32(-0.3)
    assert in_float32 == 0 and w[0, 1] != in_float32


def test_uint16_is_little_endian(tmp_path):
    entry = {"name": "w", "shape": [2], "dtype": "float32",
             "quantization": {"dtype": "uint16", "scale": 0.5, "min": 1}}
    w = read_weights(one_tensor(tmp_path, entry, struct.pack("<2H", 258, 65535)))["w"]
    np.testing.assert_array_equal(w, np.array([130.0, 32768.5], dtype=np.float32))


def test_int32_rounds_ties_up_as_math_round(tmp_path):
    # scale 0.5: byte 1 -> 0.5 -> 1 in JS (numpy.rint gives 0), 5 -> 2.5 -> 3 (rint: 2); with min -2,
    # byte 1 -> -1.5 -> -1 (rint: -2) and byte 3 -> -0.5 -> 0.
    entry = {"name": "n", "shape": [5], "dtype": "int32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": 0}}
    n = read_weights(one_tensor(tmp_path / "a", entry, bytes([0, 1, 2, 3, 5])))["n"]
    assert n.dtype == np.int32
    np.testing.assert_array_equal(n, [0, 1, 1, 2, 3])
    assert np.rint(np.array([0.5, 2.5])).tolist() == [0, 2]  # what banker's rounding would have given
    entry["quantization"]["min"] = -2
    np.testing.assert_array_equal(read_weights(one_tensor(tmp_path / "b", entry, bytes([0, 1, 2, 3, 4])))["n"],
                                  [-2, -1, -1, 0, 0])


def test_int32_just_below_a_half_rounds_down(tmp_path):
    # 0.49999999999999994 is the double just below 0.5: Math.round gives 0, floor(x + 0.5) gives 1.
    entry = {"name": "n", "shape": [], "dtype": "int32",
             "quantization": {"dtype": "uint8", "scale": 1, "min": 0.49999999999999994}}
    n = read_weights(one_tensor(tmp_path, entry, bytes([0])))["n"]
    assert n.shape == () and n == 0 and np.floor(0.49999999999999994 + 0.5) == 1


HALVES = {  # IEEE half bit pattern -> float32 value
    0x0000: 0.0, 0x8000: -0.0, 0x0001: 2.0**-24, 0x03FF: 1023 * 2.0**-24, 0x0400: 2.0**-14, 0x3C00: 1.0,
    0xC000: -2.0, 0x3555: 0.333251953125, 0x7BFF: 65504.0, 0x7C00: np.inf, 0xFC00: -np.inf,
}


def test_float16_known_patterns(tmp_path):
    patterns = [*HALVES, 0x7E00, 0xFD01]
    entry = {"name": "h", "shape": [len(patterns)], "dtype": "float32", "quantization": {"dtype": "float16"}}
    h = read_weights(one_tensor(tmp_path, entry, struct.pack(f"<{len(patterns)}H", *patterns)))["h"]
    assert h.dtype == np.float32
    expected = np.array(list(HALVES.values()), dtype=np.float32)
    assert h[:len(HALVES)].view(np.uint32).tolist() == expected.view(np.uint32).tolist()  # -0.0 included
    # NaNs keep their sign and payload: the half's 10 mantissa bits move to the top of float32's 23.
    assert h[len(HALVES):].view(np.uint32).tolist() == [0x7FC00000, 0xFFA02000]


def test_float16_of_every_pattern_is_ieee(tmp_path):
    entry = {"name": "h", "shape": [65536], "dtype": "float32", "quantization": {"dtype": "float16"}}
    h = read_weights(one_tensor(tmp_path, entry, np.arange(65536, dtype="<u2").tobytes()))["h"]
    ieee = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    finite = ~np.isnan(ieee)
    assert h[finite].view(np.uint32).tolist() == ieee[finite].view(np.uint32).tolist()
    assert np.isnan(h[~finite]).all() and (~finite).sum() == 2 * 1023


def test_unquantized_float32_int32_bool(tmp_path):
    groups = [{"paths": ["w.bin"], "weights": [{"name": "f", "shape": [2], "dtype": "float32"},
                                               {"name": "i", "shape": [2], "dtype": "int32"},
                                               {"name": "b", "shape": [3], "dtype": "bool"}]}]
    data = struct.pack("<2f2i", 1.5, -np.inf, -7, 2**31 - 1) + bytes([1, 0, 1])
    w = read_weights(write_model(tmp_path, groups, {"w.bin": data}))
    np.testing.assert_array_equal(w["f"], np.array([1.5, -np.inf], dtype=np.float32))
    np.testing.assert_array_equal(w["i"], np.array([-7, 2**31 - 1], dtype=np.int32))
    assert w["b"].dtype == np.bool_ and w["b"].tolist() == [True, False, True]
    assert w["f"].dtype == np.float32 and w["i"].dtype == np.int32 and w["f"].flags.writeable


def test_tensor_straddling_two_shards(tmp_path):
    # 3 float32 (12 bytes) then 2 int32 (8 bytes) cut at byte 10: the first tensor's last value is
    # split across the shards, as tfjs-core's CompositeArrayBuffer joins them.
    data = struct.pack("<3f2i", 0.25, -1.0, 3.5, 41, -42)
    groups = [{"paths": ["g-shard1of2.bin", "g-shard2of2.bin"],
               "weights": [{"name": "a", "shape": [3], "dtype": "float32"},
                           {"name": "b", "shape": [2], "dtype": "int32"}]}]
    w = read_weights(write_model(tmp_path, groups, {"g-shard1of2.bin": data[:10], "g-shard2of2.bin": data[10:]}))
    np.testing.assert_array_equal(w["a"], np.array([0.25, -1.0, 3.5], dtype=np.float32))
    np.testing.assert_array_equal(w["b"], [41, -42])


def test_offsets_run_across_a_groups_tensors_of_mixed_storage(tmp_path):
    # In bytes: q8 4, s 4, q16 6, b 2, z 0, h 2, n 1 (= 19) in group 0; group 1 has its own shard.
    weights = [
        {"name": "q8", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 2, "min": -1}},
        {"name": "s", "shape": [], "dtype": "float32"},
        {"name": "q16", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint16", "scale": 1, "min": 0}},
        {"name": "b", "shape": [2], "dtype": "bool"},
        {"name": "z", "shape": [0, 3], "dtype": "float32"},
        {"name": "h", "shape": [1], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "n", "shape": [1, 1], "dtype": "int32", "quantization": {"dtype": "uint8", "scale": 1, "min": 3}},
    ]
    data0 = (bytes([0, 1, 2, 3]) + struct.pack("<f3H", -0.5, 7, 8, 9) + bytes([0, 1]) + struct.pack("<H", 0x3C00)
             + b"\x04")
    groups = [{"paths": ["g0.bin"], "weights": weights},
              {"paths": ["g1.bin"], "weights": [{"name": "later", "shape": [1], "dtype": "int32"}]}]
    manifest = write_model(tmp_path, groups, {"g0.bin": data0, "g1.bin": struct.pack("<i", 5)})
    w = read_weights(manifest)
    assert list(w) == ["q8", "s", "q16", "b", "z", "h", "n", "later"]
    np.testing.assert_array_equal(w["q8"], [[-1, 1], [3, 5]])
    assert w["s"].shape == () and w["s"] == -0.5
    np.testing.assert_array_equal(w["q16"], [7, 8, 9])
    assert w["b"].tolist() == [False, True] and w["z"].shape == (0, 3) and w["h"].tolist() == [1.0]
    assert w["n"].tolist() == [[7]] and w["later"].tolist() == [5]
    groups = read_manifest(manifest)
    assert [g.nbytes for g in groups] == [19, 4] and groups[1].files == ((tmp_path / "g1.bin").resolve(),)
    assert groups[0].weights[2] == WeightSpec("q16", (3,), "float32", {"dtype": "uint16", "scale": 1.0, "min": 0.0}, 0)


def test_model_json_weights_manifest_is_read(tmp_path):
    (tmp_path / "w.bin").write_bytes(struct.pack("<f", 2.0))
    model = tmp_path / "model.json"
    model.write_text(json.dumps({"format": "graph-model", "modelTopology": {},
                                 "weightsManifest": [{"paths": ["w.bin"], "weights": [
                                     {"name": "x", "shape": [1], "dtype": "float32"}]}]}))
    assert read_weights(model)["x"].tolist() == [2.0]


def test_shard_in_a_subfolder_is_read(tmp_path):
    (tmp_path / "shards").mkdir()
    manifest = write_model(tmp_path, [{"paths": ["shards/../shards/w.bin"], "weights": [
        {"name": "x", "shape": [1], "dtype": "int32"}]}], {"shards/w.bin": struct.pack("<i", 9)})
    assert read_weights(manifest)["x"].tolist() == [9]


# --- tfjs-core's own decoding (the oracle) --------------------------------------------------------

def test_oracle_is_tfjs_core_4_22_on_all_seven_models():
    data = oracle()
    assert (data["tfjs_core"], data["tfjs_backend_cpu"], data["backend"]) == ("4.22.0", "4.22.0", "cpu")
    assert sorted(data["models"]) == FACEAPI_MANIFESTS


@pytest.mark.parametrize("case", oracle()["synthetic"], ids=lambda case: case["name"])
def test_every_bit_pattern_decodes_as_tfjs_does(tmp_path, case):
    # Every uint8 / uint16 pattern under the spec decode.js gave tfjs-core: float16 (all 65536),
    # uint16 and uint8 to float32, and to int32 with ties and near-ties.
    data = bytes(range(256)) if case["bytes"] == "arange_u8" else np.arange(65536, dtype="<u2").tobytes()
    values = read_weights(one_tensor(tmp_path, case["spec"], data))[case["name"]]
    assert [list(values.shape), str(values.dtype)] == [case["shape"], case["dtype"]]
    assert values[:4].tolist() == [float(v) for v in case["first"]]
    assert [np.nanmin(values), np.nanmax(values)] == [float(case["min"]), float(case["max"])]
    assert sha256(values) == case["sha256"]


@pytest.mark.parametrize("manifest", FACEAPI_MANIFESTS)
def test_faceapi_weights_are_bit_exact_with_tfjs(manifest):
    expected = oracle()["models"][manifest]
    path = faceapi_package() / "model" / manifest
    # The same files first: a mismatch there is another package, not a decoding difference.
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected["manifest_sha256"]
    for shard, digest in expected["shards"].items():
        assert hashlib.sha256((path.parent / shard).read_bytes()).hexdigest() == digest, shard
    weights = read_weights(path)
    assert list(weights) == [t["name"] for t in expected["tensors"]]
    wrong = [t["name"] for t in expected["tensors"]
             if (list(weights[t["name"]].shape), str(weights[t["name"]].dtype), sha256(weights[t["name"]]))
             != (t["shape"], t["dtype"], t["sha256"])]
    assert wrong == []
    for t in expected["tensors"]:
        values = weights[t["name"]]
        assert values.ravel()[:4].tolist() == t["first"] and [values.min(), values.max()] == [t["min"], t["max"]]


# --- bad input ------------------------------------------------------------------------------------

def refused(manifest: Path, *fragments: str) -> str:
    with pytest.raises(TFJSWeightsError) as error:
        read_weights(manifest)
    message = str(error.value)
    assert str(manifest) in message or manifest.name in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_manifest_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-weights_manifest.json"):
        read_weights(tmp_path / "no-such-weights_manifest.json")


@pytest.mark.parametrize(("text", "fragment"), [
    ("[{\"paths\": [", "not a JSON weights manifest"),
    ("[{\"paths\": [], \"weights\": [{\"name\": \"x\", \"shape\": [1], \"dtype\": \"float32\", "
     "\"quantization\": {\"dtype\": \"uint8\", \"scale\": NaN, \"min\": 0}}]}]", "NaN is not JSON"),
    ("{\"paths\": [], \"weights\": []}", "expected a JSON list of weight groups"),
    ("{\"weightsManifest\": {}}", "weightsManifest: expected a JSON list"),
    ("[[]]", "group 0: expected an object with 'paths' and 'weights', got a list"),
    ("[{\"paths\": []}]", "group 0: missing field 'weights'"),
    ("[{\"paths\": \"w.bin\", \"weights\": []}]", "group 0: 'paths' must be a list, got a string"),
    ("[{\"paths\": [3], \"weights\": []}]", "group 0, paths[0]: a shard path must be a non-empty string"),
    ("[{\"paths\": [], \"weights\": [7]}]", "group 0, weight 0: expected an object"),
])
def test_malformed_manifest(tmp_path, text, fragment):
    manifest = tmp_path / "m-weights_manifest.json"
    manifest.write_text(text)
    refused(manifest, fragment)


def test_manifest_not_utf8(tmp_path):
    manifest = tmp_path / "m-weights_manifest.json"
    manifest.write_bytes(b'[{"paths": ["\xff"], "weights": []}]')
    refused(manifest, "line 1", "not UTF-8")


@pytest.mark.parametrize("field", ["name", "shape", "dtype"])
def test_entry_missing_a_field(tmp_path, field):
    entry = {"name": "x", "shape": [1], "dtype": "float32"}
    del entry[field]
    groups = [{"paths": ["w.bin"], "weights": [{"name": "ok", "shape": [], "dtype": "int32"}, entry]}]
    refused(write_model(tmp_path, groups, {"w.bin": bytes(8)}), "group 0, weight 1", f"missing field '{field}'")


@pytest.mark.parametrize("shape", [3, [2, -1], [2.0], [True], ["2"], None])
def test_shape_not_a_list_of_non_negative_ints(tmp_path, shape):
    refused(one_tensor(tmp_path, {"name": "x", "shape": shape, "dtype": "float32"}, bytes(8)),
            "weight 0 ('x')", "'shape' must be a list of non-negative integers", repr(shape))


@pytest.mark.parametrize("name", ["", 5, None])
def test_name_not_a_string(tmp_path, name):
    refused(one_tensor(tmp_path, {"name": name, "shape": [1], "dtype": "float32"}, bytes(4)),
            "weight 0", "'name' must be a non-empty string")


@pytest.mark.parametrize("shard", ["/etc/passwd", "C:\\weights.bin", "\\\\server\\share\\w.bin"])
def test_absolute_shard_path_is_refused(tmp_path, shard):
    manifest = write_model(tmp_path, [{"paths": [shard], "weights": []}], {})
    refused(manifest, "group 0, paths[0]", "is absolute")


def test_shard_escaping_the_folder_is_refused_even_when_it_exists(tmp_path):
    (tmp_path / "outside.bin").write_bytes(struct.pack("<f", 1.0))
    groups = [{"paths": ["../outside.bin"], "weights": [{"name": "x", "shape": [1], "dtype": "float32"}]}]
    message = refused(write_model(tmp_path / "model", groups, {}), "'../outside.bin'", "leads outside")
    with pytest.raises(TFJSWeightsError, match="leads outside"):
        read_manifest(tmp_path / "model" / "model-weights_manifest.json")  # refused before any read
    assert "shards are read only from inside it" in message


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.bin").write_bytes(bytes(4))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").symlink_to(tmp_path / "outside.bin")
    groups = [{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [1], "dtype": "float32"}]}]
    refused(write_model(tmp_path / "model", groups, {}), "'w.bin'", "leads outside")


def test_missing_shard_names_the_shard_and_group(tmp_path):
    groups = [{"paths": ["a.bin"], "weights": [{"name": "x", "shape": [1], "dtype": "float32"}]},
              {"paths": ["b.bin"], "weights": [{"name": "y", "shape": [1], "dtype": "float32"}]}]
    refused(write_model(tmp_path, groups, {"a.bin": bytes(4)}), "shard 'b.bin' of group 1 does not exist")


def test_shard_that_is_a_folder(tmp_path):
    (tmp_path / "w.bin").mkdir()
    refused(write_model(tmp_path, [{"paths": ["w.bin"], "weights": []}], {}), "shard 'w.bin' of group 0 is a folder")


def test_short_shards_name_the_first_tensor_that_does_not_fit(tmp_path):
    groups = [{"paths": ["s1.bin", "s2.bin"], "weights": [
        {"name": "a", "shape": [2], "dtype": "float32"},
        {"name": "b", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 1, "min": 0}},
        {"name": "c", "shape": [3], "dtype": "int32"}]}]  # 8 + 4 + 12 = 24 bytes; 6 + 5 present
    refused(write_model(tmp_path, groups, {"s1.bin": bytes(6), "s2.bin": bytes(5)}),
            "group 0's shards hold 11 bytes but its tensors need 24", "s1.bin (6 bytes), s2.bin (5 bytes)",
            "tensor 'b' (bytes 8..12) does not fit")


def test_longer_shard_is_an_error_too(tmp_path):
    refused(one_tensor(tmp_path, {"name": "x", "shape": [1], "dtype": "float32"}, bytes(6)),
            "hold 6 bytes, 2 more than its tensors need (4)", "w.bin (6 bytes)", "tfjs ignores the rest",
            "not from the same export")


@pytest.mark.parametrize(("entry", "fragment"), [
    ({"dtype": "complex64"}, "unsupported dtype 'complex64'; expected one of ['bool', 'float32', 'int32']"),
    ({"dtype": "string"}, "string tensors are unsupported"),
    ({"dtype": "float64"}, "unsupported dtype 'float64'"),
    ({"quantization": {"dtype": "int8", "scale": 1, "min": 0}}, "unknown quantization dtype 'int8'"),
    ({"quantization": {"scale": 1, "min": 0}}, "'quantization' must be an object with a 'dtype'"),
    ({"quantization": None}, "'quantization' must be an object with a 'dtype', got None"),
    ({"quantization": {"dtype": "uint8", "min": 0}}, "uint8 quantization needs 'scale' and 'min'; 'scale' is missing"),
    ({"quantization": {"dtype": "uint16", "scale": 1}}, "needs 'scale' and 'min'; 'min' is missing"),
    ({"quantization": {"dtype": "uint8", "scale": "0.1", "min": 0}}, "'scale' must be a finite number, got '0.1'"),
    ({"quantization": {"dtype": "uint8", "scale": 1, "min": True}}, "'min' must be a finite number, got True"),
    ({"dtype": "int32", "quantization": {"dtype": "float16"}}, "float16 quantization is for float32 tensors only"),
    ({"dtype": "bool", "quantization": {"dtype": "uint8", "scale": 1, "min": 0}}, "for float32 and int32 tensors only"),
])
def test_unsupported_dtype_or_quantization(tmp_path, entry, fragment):
    refused(one_tensor(tmp_path, {"name": "x", "shape": [1], "dtype": "float32", **entry}, bytes(4)),
            "weight 0 ('x')", fragment)


def test_duplicate_names_across_groups(tmp_path):
    groups = [{"paths": ["a.bin"], "weights": [{"name": "x", "shape": [1], "dtype": "float32"}]},
              {"paths": ["b.bin"], "weights": [{"name": "y", "shape": [], "dtype": "int32"},
                                               {"name": "x", "shape": [1], "dtype": "float32"}]}]
    refused(write_model(tmp_path, groups, {"a.bin": bytes(4), "b.bin": bytes(8)}),
            "group 1, weight 1: tensor name 'x' repeats group 0, weight 0")


def test_bool_byte_other_than_0_or_1(tmp_path):
    refused(one_tensor(tmp_path, {"name": "b", "shape": [3], "dtype": "bool"}, bytes([1, 0, 2])),
            "tensor 'b'", "bool value 2 is byte 2; expected 0 or 1")


def test_dequantized_values_out_of_range(tmp_path):
    big = {"name": "n", "shape": [2], "dtype": "int32", "quantization": {"dtype": "uint8", "scale": 2**24, "min": 0}}
    refused(one_tensor(tmp_path / "a", big, bytes([1, 255])), "tensor 'n'", "leaves the int32 range")
    huge = {"name": "f", "shape": [1], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 1e300, "min": 0}}
    refused(one_tensor(tmp_path / "b", huge, bytes([1])), "tensor 'f'", "overflows float32")
