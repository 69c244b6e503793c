import pytest

from mnet_vision.markdown import markdown_table


def test_layout_and_default_alignment():
    table = markdown_table([("a", 1, "2.50"), ("b", 22, "")], ["name", "n", "x"])
    assert table == "| name | n | x |\n|---|---:|---:|\n| a | 1 | 2.50 |\n| b | 22 | |"


def test_alignment_per_column_and_no_rows():
    assert markdown_table([], ["n", "index"], align="rl") == "| n | index |\n|---:|---|"


def test_rows_and_align_must_match_the_columns():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table([("a", 1), ("b",)], ["name", "n"])
    with pytest.raises(ValueError, match="align"):
        markdown_table([], ["name", "n"], align="l")
    with pytest.raises(ValueError, match="align"):
        markdown_table([], ["name"], align="c")
