"""The faces benchmark's table on one demo photo, one round: every stage and figure a row, a column per path,
the search rows; no timing is asserted (timing the six photos is the benchmark's, not a test's)."""
import math

from mnet_vision.benchmarks import faces
from tests.helpers.pretrained import faceapi_package


def test_one_photo_gives_every_row_of_the_table():
    faceapi_package()  # skips, with the reason, where the package cannot be fetched
    args = {"repeats": 1, "warmup": 0, "onnx": False, "photos": 1, "threads": 1, "search_size": 500}
    rows = faces.compare_face_pipelines(**args)
    labels = [row["what"] for row in rows]
    assert labels[:len(faces.STAGES)] == [f"{label}, ms / photo" for _, label in faces.STAGES]
    assert labels[len(faces.STAGES):] == [
        "end to end, ms / photo", "faces found", "end to end, faces / s",
        "face search, 500 entries (IDMap2,Flat), ms / query",
        "face search, 1,000,000 entries (IDMap2,HNSW32,Flat efSearch 64), ms / query"]
    assert all(list(row["values"]) == [faces.PYTORCH] for row in rows)
    values = {row["what"]: row["values"][faces.PYTORCH] for row in rows}
    assert values["faces found"] == 3  # sample1's three people
    assert all(v >= 0 and math.isfinite(v) for v in values.values())
    stages = sum(values[f"{label}, ms / photo"] for _, label in faces.STAGES)
    assert math.isclose(stages, values["end to end, ms / photo"], rel_tol=1e-9)
    table = faces.report(rows, args)
    lines = table.splitlines()
    assert lines[1] == f"| stage | {faces.PYTORCH} | note |" and len(lines) == 3 + len(rows)
    assert "| faces found | 3 | 1 photos |" in table and "docs/speed.md" in table
