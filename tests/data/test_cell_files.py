"""The partition-files workflow's table (the workflow itself runs in tests/tools/test_make_cells.py)."""
from mnet_vision.data.cell_files import cells_table


def test_cells_table():
    table = cells_table([{"t_max": 1000, "cells": 12, "photos_kept": 900, "photos_dropped": 100, "levels": "2-9",
                          "build_seconds": 0.123}])
    assert table.splitlines()[0] == "| t_max | cells | photos kept | dropped | levels | build seconds |"
    assert table.splitlines()[2] == "| 1000 | 12 | 900 | 100 | 2-9 | 0.12 |"
