"""The CelebA-format reader: a good folder reads; each kind of bad input gets its own message."""

import os

import numpy as np
import pytest

from debiaslab.celeba import read_celeba
from debiaslab.errors import DebiaslabError


def edit_line(path, line_no, new):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n")


def test_reads_a_good_folder(synthfaces_dir):
    index = read_celeba(synthfaces_dir)
    assert len(index.image_names) == 60
    assert index.labels.dtype == np.int8 and set(np.unique(index.labels)) <= {0, 1}
    assert set(index.partition) == {0, 1, 2}
    assert index.column("Smiling").shape == (60,)
    assert index.image_path("000001.jpg").is_file()


def test_missing_root(tmp_path):
    with pytest.raises(DebiaslabError, match="data folder not found"):
        read_celeba(tmp_path / "nowhere")


def test_missing_attribute_file(celeba_copy):
    (celeba_copy / "list_attr_celeba.txt").unlink()
    with pytest.raises(DebiaslabError, match=r"list_attr_celeba\.txt: file not found"):
        read_celeba(celeba_copy)


def test_missing_image_folder(celeba_copy):
    (celeba_copy / "img_align_celeba").rename(celeba_copy / "images")
    with pytest.raises(DebiaslabError, match="img_align_celeba: image folder not found"):
        read_celeba(celeba_copy)


def test_bad_count_line(celeba_copy):
    edit_line(celeba_copy / "list_attr_celeba.txt", 1, "sixty")
    with pytest.raises(DebiaslabError, match="line 1: expected the number of images"):
        read_celeba(celeba_copy)


def test_count_disagrees_with_rows(celeba_copy):
    edit_line(celeba_copy / "list_attr_celeba.txt", 1, "61")
    with pytest.raises(DebiaslabError, match="says 61 images but 60 rows follow"):
        read_celeba(celeba_copy)


def test_row_does_not_match_header(celeba_copy):
    path = celeba_copy / "list_attr_celeba.txt"
    row = path.read_text().splitlines()[6]
    edit_line(path, 7, row.rsplit(" ", 1)[0])  # drop the last value
    with pytest.raises(DebiaslabError, match=r"line 7: expected an image name and 11 values .* found 10"):
        read_celeba(celeba_copy)


def test_value_outside_minus_one_one(celeba_copy):
    path = celeba_copy / "list_attr_celeba.txt"
    header = path.read_text().splitlines()[1].split()
    edit_line(path, 4, "000002.jpg " + " ".join(["1"] * (len(header) - 1) + ["0"]))
    with pytest.raises(DebiaslabError, match=f"line 4: {header[-1]} is 0, expected -1 or 1"):
        read_celeba(celeba_copy)


def test_non_numeric_value(celeba_copy):
    path = celeba_copy / "list_attr_celeba.txt"
    n = len(path.read_text().splitlines()[1].split())
    edit_line(path, 5, "000003.jpg " + " ".join(["yes"] * n))
    with pytest.raises(DebiaslabError, match="line 5: expected only -1 and 1"):
        read_celeba(celeba_copy)


def test_bad_partition_id(celeba_copy):
    edit_line(celeba_copy / "list_eval_partition.txt", 3, "000003.jpg 3")
    expected = r"list_eval_partition\.txt line 3: expected '<image name> <0\|1\|2>'"
    with pytest.raises(DebiaslabError, match=expected):
        read_celeba(celeba_copy)


def test_partition_missing_an_image(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DebiaslabError, match="has no line for '000060.jpg'"):
        read_celeba(celeba_copy)


def test_partition_lists_an_unknown_image(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_text(path.read_text() + "999999.jpg 0\n")
    with pytest.raises(DebiaslabError, match="lists 1 images absent from list_attr_celeba.txt"):
        read_celeba(celeba_copy)


@pytest.mark.parametrize("name", ["../outside.jpg", "/etc/passwd", "a/../../b.jpg"])
def test_image_name_escaping_the_root(celeba_copy, name):
    attr = celeba_copy / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    edit_line(attr, 3, name + " " + lines[2].split(" ", 1)[1])
    with pytest.raises(DebiaslabError, match="must be a relative path inside img_align_celeba"):
        read_celeba(celeba_copy)


def test_symlink_escaping_the_root(celeba_copy, tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"not yours")
    link = celeba_copy / "img_align_celeba" / "000001.jpg"
    link.unlink()
    os.symlink(outside, link)
    index = read_celeba(celeba_copy)
    with pytest.raises(DebiaslabError, match="resolves outside"):
        index.image_path("000001.jpg")


def test_partition_lists_an_image_twice(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_text(path.read_text() + "000001.jpg 2\n")  # line 1 says 0, line 61 says 2
    with pytest.raises(DebiaslabError) as err:
        read_celeba(celeba_copy)
    assert str(err.value) == (f"{path} line 61: image '000001.jpg' appears again (first on line 1); "
                              "expected one line per image")


def test_attribute_file_lists_an_image_twice(celeba_copy):
    path = celeba_copy / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    edit_line(path, 5, "000001.jpg " + lines[4].split(" ", 1)[1])
    with pytest.raises(DebiaslabError) as err:
        read_celeba(celeba_copy)
    assert str(err.value) == (f"{path} line 5: image '000001.jpg' appears again (first on line 3); "
                              "expected one line per image")


@pytest.mark.parametrize("name", ["list_attr_celeba.txt", "list_eval_partition.txt"])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_files_name_the_encoding(celeba_copy, name, encoding):
    path = celeba_copy / name
    text = path.read_text()
    path.write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.encode(encoding))
    with pytest.raises(DebiaslabError) as err:
        read_celeba(celeba_copy)
    assert str(err.value) == f"{path}: UTF-16 text; expected ASCII/UTF-8 (re-save it as UTF-8)"


def test_utf16_without_a_byte_order_mark(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_bytes(path.read_text().encode("utf-16-le"))
    with pytest.raises(DebiaslabError, match=r"list_eval_partition\.txt: contains NUL bytes \(UTF-16 text "):
        read_celeba(celeba_copy)


def test_utf8_byte_order_marks_are_accepted(synthfaces_dir, celeba_copy):
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        path = celeba_copy / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    index, plain = read_celeba(celeba_copy), read_celeba(synthfaces_dir)
    assert index.image_names == plain.image_names and index.attribute_names == plain.attribute_names
    np.testing.assert_array_equal(index.labels, plain.labels)
    np.testing.assert_array_equal(index.partition, plain.partition)


def test_utf8_byte_order_mark_and_a_bad_line_still_name_the_line(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"000001.jpg 0", b"000001.jpg x"))
    expected = r"txt line 1: expected '<image name> <0\|1\|2>', got '000001.jpg x'"
    with pytest.raises(DebiaslabError, match=expected):
        read_celeba(celeba_copy)


def test_latin1_bytes_are_one_line(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_bytes(path.read_bytes() + "caf\xe9.jpg 0\n".encode("latin-1"))
    with pytest.raises(DebiaslabError, match=r"list_eval_partition\.txt: not a text file \(byte 0xe9 at "
                                             r"offset \d+ is not UTF-8; expected ASCII/UTF-8 text\)$"):
        read_celeba(celeba_copy)
