"""csvfile.check_appendable: the one check, shared by the main CSV's and the dataset file's
argument checks, that a results path may be appended to."""

from __future__ import annotations

import os

import pytest

from bertbench.store import csvfile


def test_an_absent_path_is_fine_and_a_writable_file_is_appendable(tmp_path):
    path = tmp_path / "qa.csv"
    assert csvfile.check_appendable(path) is False
    path.write_bytes(b"timestamp\n")
    assert csvfile.check_appendable(path) is True
    assert path.read_bytes() == b"timestamp\n"  # opening it changed nothing


def test_a_folder_or_an_unwritable_file_is_refused_with_the_reason(tmp_path):
    with pytest.raises(csvfile.ResultsError, match="not a regular file"):
        csvfile.check_appendable(tmp_path)
    path = tmp_path / "qa.csv"
    path.write_bytes(b"x\n")
    path.chmod(0o444)
    if os.access(path, os.W_OK):  # root reads and writes whatever the mode says
        pytest.skip("this user may write a read-only file")
    with pytest.raises(csvfile.ResultsError, match="cannot open it for reading and appending"):
        csvfile.check_appendable(path)


def test_a_dangling_link_is_refused_where_it_would_be_created_or_appended_to(tmp_path):
    """Creating the file fails as the link exists, opening it as its target does not: a run once
    went round that loop for ever."""
    from bertbench.store import results

    link = tmp_path / "qa.csv"
    link.symlink_to(tmp_path / "gone.csv")
    with pytest.raises(csvfile.ResultsError, match=r"a symbolic link to .*gone\.csv, which does not exist"):
        csvfile.check_appendable(link)
    with pytest.raises(csvfile.ResultsError, match="which does not exist"):
        results.prepare(link, create=True)
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv"]
