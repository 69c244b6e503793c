"""The faces gallery: index, names, search, clusters. Synthetic (always run): described photos built here with
embeddings chosen so every distance is known; the clusters against scikit-learn on arbitrary inputs. Real
(skipped, with the reason, without the face-api package): the six demo photos through face-api's pipeline,
the faces room's session run."""
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from mnet_vision.faces.gallery import (
    APART,
    IdentityNames,
    cluster_faces,
    cluster_index,
    cluster_labels,
    draw_search,
    index_faces,
    index_photos,
    photo_files,
    read_identities,
    search_faces,
    search_photos,
    xywh,
)
from mnet_vision.faces.pipeline import Face, FacePipeline, PhotoFaces
from mnet_vision.index import FaceIndex

DIM = 8
MODEL = {"name": "descriptor_a", "sha256": "a1" * 32, "dim": DIM, "align": "faceapi", "metric": "euclidean"}
OTHER = MODEL | {"name": "descriptor_b", "sha256": "b2" * 32}


def axis(i: int, length: float = 1.0) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = length
    return v


def photo(path, embeddings, size=(64, 48), skipped=()):
    """A described photo of ``embeddings`` (one face each, left to right, 16 px boxes), saved at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(len(str(path))).integers(0, 256, (size[1], size[0], 3), np.uint8)).save(path)
    faces = []
    for i, e in enumerate(embeddings):
        box = (2.0 + 18 * i, 4.0, 18.0 + 18 * i, 20.0 + i)  # each a little taller: face i+1 is the larger
        landmarks = np.stack([np.linspace(box[0], box[2], 68), np.linspace(box[1], box[3], 68)], axis=1)
        faces.append(Face(box, 0.9 - 0.1 * i, landmarks.astype(np.float32), np.asarray(e, np.float32)))
    return PhotoFaces(str(path), size[0], size[1], faces, [dict(s) for s in skipped])


@pytest.fixture
def described(tmp_path):
    """Three people: ann (photos a, b), bob (a, c), cy (b) at unit distances from one another; d has no face."""
    ann, bob, cy = axis(0), axis(1), axis(2)
    folder = tmp_path / "photos"
    return [photo(folder / "a.png", [ann, bob], skipped=[{"box": [0, 0, 5, 5], "score": 0.7, "reason": "tiny"}]),
            photo(folder / "b.png", [cy, ann + axis(3, 0.3)]),
            photo(folder / "c.png", [bob + axis(4, 0.5)]),
            photo(folder / "d.png", [])]


def test_index_records_photo_box_landmarks_and_model(tmp_path, described):
    summary = index_faces(described, ["bad.jpg"], tmp_path / "faces.faiss", MODEL, "euclidean")
    a = str(tmp_path / "photos" / "a.png")
    assert (summary["photos"], summary["faces"], summary["total"], summary["named"]) == (4, 5, 5, 0)
    assert summary["no_face"] == [str(tmp_path / "photos" / "d.png")] and summary["unreadable"] == ["bad.jpg"]
    assert summary["skipped_faces"] == [{"photo": a, "box": [0.0, 0.0, 5.0, 5.0], "score": 0.7, "reason": "tiny"}]
    index = FaceIndex.load(tmp_path / "faces.faiss")
    assert index.metric == "euclidean" and index.embedding_model == MODEL
    entry = index.entries[1]  # photo a, face 1
    face = described[0].faces[1]
    assert (entry["photo"], entry["face"], entry["identity"], entry["photo_size"]) == (a, 1, "", [64, 48])
    assert entry["box"] == xywh(face.box) == [20.0, 4.0, 16.0, 17.0]  # COCO xywh pixels
    np.testing.assert_allclose(entry["landmarks"], face.landmarks, atol=0.005)
    np.testing.assert_allclose(index.index.reconstruct(1), face.embedding)  # raw, not normalised
    # another model's faces are refused, naming both; nothing is added
    with pytest.raises(ValueError, match=r"faces.faiss: the faces of this pipeline come from descriptor_b \(sha256 "
                                         r"b2b2b2b2b2b2.*was built with descriptor_a \(sha256 a1a1a1a1a1a1"):
        index_faces(described, [], tmp_path / "faces.faiss", OTHER, "euclidean", add=True)
    with pytest.raises(ValueError, match="compares faces by euclidean distance, the describer by cosine"):
        index_faces(described, [], tmp_path / "faces.faiss", MODEL | {"metric": "cosine"}, "cosine", add=True)
    assert len(FaceIndex.load(tmp_path / "faces.faiss")) == 5
    assert index_faces(described[2:3], [], tmp_path / "faces.faiss", MODEL, "euclidean", add=True)["total"] == 6
    with pytest.raises(ValueError, match=r"no face found in any of the 2 photo\(s\) \(1 unreadable.*new.faiss not "
                                         r"written"):
        index_faces(described[3:], ["bad.jpg"], tmp_path / "new.faiss", MODEL, "euclidean")
    assert not (tmp_path / "new.faiss").exists()


def test_names_from_a_folder_layout_or_a_csv(tmp_path, described):
    people = tmp_path / "people"
    for name, files in {"ann": ["x.png"], "bob": ["y.png", "deeper/z.png"]}.items():
        for f in files:
            (people / name / f).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(people / name / f)
    names = read_identities(people)
    assert {p.name: n for p, n in names.by_photo.items()} == {"x.png": "ann", "y.png": "bob", "z.png": "bob"}
    assert [p.relative_to(people).as_posix() for p in photo_files(people)] == ["ann/x.png", "bob/deeper/z.png",
                                                                               "bob/y.png"]
    assert photo_files(people / "*" / "?.png") == [people / "ann/x.png", people / "bob/y.png"]  # a glob, sorted
    with pytest.raises(FileNotFoundError, match=r"no file matches .*\*\.gif"):
        photo_files(people / "*.gif")
    (tmp_path / "list.txt").write_text("# the list\npeople/bob/y.png\n\n")
    assert photo_files([tmp_path / "list.txt", people / "ann"]) == [tmp_path / "people/bob/y.png", people / "ann/x.png"]
    with pytest.raises(FileNotFoundError, match="photos: .*nowhere.jpg does not exist"):
        photo_files(tmp_path / "nowhere.jpg")
    # a photo named as a whole names its largest face (face 1 here); per-face rows name the others
    (tmp_path / "names.csv").write_text("photo,face,identity\nphotos/a.png,cy\nphotos/a.png,0,dee\nphotos/b.png,1,ann\n"
                                        "photos/missing.png,eve\nphotos/c.png,3,fay\nphotos/d.png,gil\n")
    names = read_identities(tmp_path / "names.csv")
    assert names.names(described[0]) == ["dee", "cy"] and names.names(described[1]) == ["", "ann"]
    folder = (tmp_path / "photos").resolve()
    assert names.unmatched(described) == [f"{folder / 'missing.png'}: eve (photo not indexed)",
                                          f"{folder / 'd.png'}: gil (no face found)",
                                          f"{folder / 'c.png'} face 3: fay (the photo has 1 face(s))"]
    summary = index_faces(described, [], tmp_path / "named.faiss", MODEL, "euclidean", names)
    assert summary["named"] == 3 and len(summary["unmatched_names"]) == 3
    assert sorted(e["identity"] for e in FaceIndex.load(tmp_path / "named.faiss").entries.values()) == [
        "", "", "ann", "cy", "dee"]
    for text, error in (("a.png\n", r"line 1: expected 'photo,identity' or 'photo,face,identity'"),
                        ("a.png,x,ann\n", r"line 1: face 'x' is not a face number"),
                        ("# nobody\n", "names nobody")):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(ValueError, match=error):
            read_identities(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="identities=.*nowhere does not exist; expected a folder of identity"):
        read_identities(tmp_path / "nowhere")
    assert IdentityNames().names(described[0]) == ["", ""]


def test_search_reports_euclidean_distances_known_by_construction(tmp_path, described):
    index_faces(described[:3], [], tmp_path / "faces.faiss", MODEL, "euclidean")
    gallery = FaceIndex.load(tmp_path / "faces.faiss")
    query = photo(tmp_path / "q.png", [axis(0) + axis(5, 0.5), axis(6, 3.0)])
    result = search_faces(gallery, [query], [], MODEL, k=2, threshold=0.5)
    first, second = result["photos"][0]["faces"]
    # ann's two faces: 0.5 away (at the threshold: a match, thresholds are inclusive; 0.5 and its square are exact
    # in float32) and sqrt(0.25 + 0.09), beyond it
    assert [m["label"] for m in first["matches"]] == ["a.png#0", "b.png#1"]
    assert [m["distance"] for m in first["matches"]] == pytest.approx([0.5, np.sqrt(0.34)], abs=1e-4)
    assert [m["unknown"] for m in first["matches"]] == [False, True]
    assert first["label"] == "a.png#0" and not first["unknown"] and first["matches"][0]["box"] == xywh(
        described[0].faces[0].box)
    # a stranger: sqrt(9 + 1) from everyone, beyond the threshold
    assert second["label"] == "unknown" and second["unknown"]
    assert second["distance"] == pytest.approx(np.sqrt(10), abs=1e-4)
    assert all(m["unknown"] for m in second["matches"])
    # searching with a gallery photo: its own faces first, unless left out
    (mine,) = search_faces(gallery, described[1:2], [], MODEL, k=1)["photos"]
    assert [f["matches"][0]["photo"] for f in mine["faces"]] == [str(tmp_path / "photos" / "b.png")] * 2
    (others,) = search_faces(gallery, described[1:2], [], MODEL, k=1, skip_same_photo=True)["photos"]
    assert [f["label"] for f in others["faces"]] == ["unknown", "a.png#0"]  # cy is in no other photo
    assert others["faces"][1]["distance"] == pytest.approx(0.3, abs=1e-4)
    with pytest.raises(ValueError, match="the queries come from descriptor_b.*built with descriptor_a"):
        search_faces(gallery, [query], [], OTHER)
    pictures = draw_search(result | {"index": "x"}, tmp_path / "out", [tmp_path / "q.png"], progress=False)
    assert [p.name for p in pictures] == ["q.png.png", "q.png.matches.png"]
    with Image.open(pictures[0]) as drawn:
        assert drawn.size == (448, 336)  # 64x48 enlarged by a whole factor (7) to a readable >= 320 px short side
    json.dumps(result)  # all JSON-able


def scikit_partition(x, metric, threshold, method):
    cut = threshold if metric == "euclidean" else 1 - threshold
    return AgglomerativeClustering(n_clusters=None, distance_threshold=cut, linkage=method,
                                   metric=metric).fit_predict(x)


@pytest.mark.parametrize("metric, threshold", [("euclidean", 1.6), ("cosine", 0.8)])
@pytest.mark.parametrize("method", ["single", "average", "complete"])
def test_clusters_match_scikit_learn_on_arbitrary_vectors(method, metric, threshold):
    x = np.random.default_rng(7).normal(size=(60, 5))
    labels = cluster_labels(x, metric, threshold, method)
    assert 3 < labels.max() + 1 < 57  # neither all together nor all apart: a partition worth comparing
    assert adjusted_rand_score(scikit_partition(x, metric, threshold, method), labels) == 1.0


def test_clusters_known_by_construction(tmp_path, described):
    index_faces(described[:3], [], tmp_path / "faces.faiss", MODEL, "euclidean")
    index = FaceIndex.load(tmp_path / "faces.faiss")
    result = cluster_faces(index, threshold=0.6)
    sizes = [(c["size"], c["photos"], [m["label"] for m in c["members"]]) for c in result["clusters"]]
    assert sizes == [(2, 2, ["a.png#0", "b.png#1"]), (2, 2, ["a.png#1", "c.png#0"]), (1, 1, ["b.png#0"])]
    assert (result["people_in_several_photos"], result["singletons"], result["faces"]) == (2, 1, 5)
    kmeans = cluster_faces(index, method="kmeans", clusters=3)
    assert [c["size"] for c in kmeans["clusters"]] == [2, 2, 1] and kmeans["threshold"] is None
    with pytest.raises(ValueError, match="method=kmeans needs clusters= between 1 and the 5 faces"):
        cluster_faces(index, method="kmeans")
    # two faces of one photo 0.1 apart: one person by distance, two people by the photo
    close = [axis(0), axis(0) + axis(1, 0.1), axis(0) + axis(2, 0.05)]
    groups = ["p1", "p1", "p2"]
    assert cluster_labels(np.stack(close), "euclidean", 0.6, "average", groups=groups).tolist() == [0, 1, 0]
    assert cluster_labels(np.stack(close), "euclidean", 0.6, "single", groups=groups).tolist() == [0, 0, 0]
    assert APART > 1e6
    with pytest.raises(ValueError, match=r"method=average on 30001 faces needs 4 GB of pairwise distances.*kmeans"):
        cluster_labels(np.zeros((30_001, 2)), "euclidean")


def test_cluster_pictures_and_json(tmp_path, described):
    index_faces(described[:3], [], tmp_path / "faces.faiss", MODEL, "euclidean")
    result = cluster_index(tmp_path / "faces.faiss", tmp_path / "clusters", progress=False)
    written = sorted(p.relative_to(tmp_path / "clusters").as_posix() for p in (tmp_path / "clusters").rglob("*.*"))
    assert written == ["cluster_000.png", "cluster_001.png", "clusters.json", "clusters.png", "photos/a.png.png",
                       "photos/b.png.png", "photos/c.png.png", "singletons.png"]
    assert json.loads((tmp_path / "clusters" / "clusters.json").read_text())["clusters"] == result["clusters"]
    with pytest.raises(ValueError, match="is inside the folder of the input images"):
        cluster_index(tmp_path / "faces.faiss", tmp_path / "photos" / "clusters")


# -- real: the six demo photos, once ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(faceapi_pipeline, demo_faces, tmp_path_factory):
    """The six demo photos (the faces room's session run, tests/faces/conftest.py) in an index:
    ``(pipeline, described photos, index file)``."""
    read = list(demo_faces.values())
    out = tmp_path_factory.mktemp("demo") / "faces.faiss"
    index_faces(read, [], out, faceapi_pipeline.embedding_model, faceapi_pipeline.metric)
    return faceapi_pipeline, read, out


def test_real_photos_indexed_searched_and_clustered(demo):
    pipeline, read, path = demo
    index = FaceIndex.load(path)
    assert len(index) == sum(len(p.faces) for p in read) == 22  # face-api's count at score 0.5
    assert index.metric == "euclidean" and index.embedding_model["name"] == "faceapi_descriptor"
    assert len(index.embedding_model["sha256"]) == 64 and index.embedding_model["dim"] == 128
    assert {"age", "gender", "expression"} <= index.entries[0].keys()  # the attributes the session run made
    ids, stored = index.vectors()
    raw = np.stack([f.embedding for p in read for f in p.faces])
    np.testing.assert_array_equal(stored, raw)  # as described, not normalised
    norms = np.linalg.norm(raw, axis=1)
    assert 1.3 < norms.min() and norms.max() < 1.6  # not unit length: cosine would not be face-api's distance
    result = search_faces(index, read[:1], [], pipeline.embedding_model, k=22, threshold=0.6)
    for number, face in enumerate(result["photos"][0]["faces"]):
        assert face["matches"][0]["id"] == number and face["distance"] == pytest.approx(0.0, abs=1e-3)
        expected = np.linalg.norm(raw[[m["id"] for m in face["matches"]]] - raw[number], axis=1)
        np.testing.assert_allclose([m["distance"] for m in face["matches"]], expected, atol=1e-4)  # exact L2
    clusters = cluster_faces(index)
    assert sum(c["size"] for c in clusters["clusters"]) == 22 and not any(c["same_photo"] for c in clusters["clusters"])


def test_real_refusals_come_before_the_work(demo, tmp_path):
    pipeline, read, path = demo
    similarity = FacePipeline(detector=pipeline.detector, landmarks=pipeline.landmarks, describer=pipeline.describer,
                              align="similarity")
    both = (r"come from faceapi_descriptor \(sha256 [0-9a-f]{12}\.\.\., 128-D, align similarity150.*built with "
            r"faceapi_descriptor \(sha256 [0-9a-f]{12}\.\.\., 128-D, align faceapi")
    # a photo that does not exist: were the refusal not first, this would be a FileNotFoundError
    with pytest.raises(ValueError, match=both):
        search_photos(path, tmp_path / "not-there.jpg", similarity, out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=f"faces.faiss: the faces of this pipeline {both}"):
        index_photos(read[0].photo, path, similarity, add=True)
    assert not (tmp_path / "out").exists() and len(FaceIndex.load(path)) == 22
    with pytest.raises(ValueError, match="out=.*sample1.jpg is an input of this run"):
        index_photos([read[1].photo, read[0].photo], read[0].photo, pipeline)
    with pytest.raises(ValueError, match="output folder .* is inside the folder of the input images"):
        search_photos(path, read[0].photo, pipeline, out_dir=f"{read[0].photo}-faces")
