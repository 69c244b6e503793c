"""Geotagged photo lists: reading, and the plausibility checks that name the line."""
import pytest

from mnet_vision.data.geotagged import read_geotagged_csv


def write(tmp_path, text):
    path = tmp_path / "photos.csv"
    path.write_text(text)
    return path


def test_reads_columns_in_any_order_and_case(tmp_path):
    photos = read_geotagged_csv(write(tmp_path, "LON,IMG_ID,LAT,extra\n2.35,a/1.jpg,48.86,x\n-0.13,b/2.jpg,51.51,y\n\n"))
    assert photos.paths == ["a/1.jpg", "b/2.jpg"]
    assert photos.lat.tolist() == [48.86, 51.51] and photos.lon.tolist() == [2.35, -0.13]


@pytest.mark.parametrize("text, message", [
    ("", r"is empty"),
    ("path,lat,lon\n", r"has a header but no photos"),
    ("path,latitude\nx.jpg,1\n", r"line 1: expected one lon column"),
    ("path,lat,lat,lon\nx.jpg,1,1,1\n", r"line 1: expected one lat column .* found 2"),
    ("path,lat,lon\nx.jpg,1,2\ny.jpg,3\n", r"line 3: expected 3 fields as the header, found 2"),
    ("path,lat,lon\nx.jpg,north,2\n", r"line 2: lat 'north' is not a number"),
    ("path,lat,lon\nx.jpg,1,2\ny.jpg,95,200\n", r"line 3: latitude 95.0 is not a number in \[-90, 90\]"),
    ("path,lat,lon\nx.jpg,1,2\ny.jpg,45,-181\n", r"line 3: longitude -181.0 is not a number in \[-180, 180\]"),
    ("path,lat,lon\nx.jpg,nan,2\n", r"line 2: latitude nan"),
    # San Francisco and Paris with the columns exchanged: -122.4 is no latitude, 37.8 is a longitude
    ("path,lat,lon\nsf.jpg,-122.42,37.77\nparis.jpg,2.35,48.86\n", r"1 latitude\(s\) lie outside .*line 2: -122.42.*look swapped"),
])
def test_bad_files_name_the_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as err:
        read_geotagged_csv(path)
    assert str(path) in str(err.value)


def test_spreadsheet_bom_is_accepted(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM, which glued to the first header read as '\\ufeffpath'."""
    path = tmp_path / "photos.csv"
    path.write_bytes(b"\xef\xbb\xbfpath,lat,lon\r\nx.jpg,48.86,2.35\r\n")
    photos = read_geotagged_csv(path)
    assert photos.paths == ["x.jpg"] and photos.lat.tolist() == [48.86]


def test_non_utf8_byte_names_the_file_and_line(tmp_path):
    path = tmp_path / "photos.csv"
    path.write_bytes("path,lat,lon\nx.jpg,1,2\nS\xe3o Paulo.jpg,-23.55,-46.63\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"photos\.csv, line 3, column 2 \(byte offset 24\): byte b'\\xe3' is not UTF-8"):
        read_geotagged_csv(path)


def test_line_numbers_count_blank_lines(tmp_path):
    path = write(tmp_path, "path,lat,lon\n\nx.jpg,1,2\n\ny.jpg,north,2\n")
    with pytest.raises(ValueError, match=r"line 5: lat 'north'"):
        read_geotagged_csv(path)
    path = write(tmp_path, "path,lat,lon\n\nx.jpg,1,2\n\ny.jpg,95,120\n")
    with pytest.raises(ValueError, match=r"line 5: latitude 95.0"):
        read_geotagged_csv(path)
