"""The one home of atomic writes: a file appears complete under its name, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perc_platform.storage.cache import (
    atomic_file,
    atomic_path,
    atomic_write,
    entry_lock,
    sweep_dead_writers,
    write_atomically,
)


def test_atomic_file_puts_the_complete_file_in_place(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "entry.bin"
    with atomic_file(target) as (handle, readable):
        handle.write(b"x" * 5000)
        handle.flush()
        assert not target.exists()  # nothing under the final name while writing
        with open(readable, "rb") as back:  # the temp file can be read back (e.g. to validate it)
            assert back.read() == b"x" * 5000
    assert target.read_bytes() == b"x" * 5000
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry.bin"]


@pytest.mark.parametrize("how", ["atomic_file", "atomic_write", "atomic_path", "write_atomically"])
def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path, how: str) -> None:
    target = tmp_path / "entry.txt"
    target.write_text("old")

    def fail(tmp: Path | None = None) -> None:
        if tmp is not None:
            tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        if how == "atomic_file":
            with atomic_file(target) as (handle, _):
                handle.write(b"half")
                fail()
        elif how == "atomic_write":
            with atomic_write(target) as handle:
                handle.write(b"half")
                fail()
        elif how == "atomic_path":
            with atomic_path(target) as tmp:
                fail(tmp)
        else:
            write_atomically(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.txt"]


def test_named_temp_files_are_replaced_and_a_dead_writers_are_swept(tmp_path: Path) -> None:
    target = tmp_path / "entry.txt"
    assert write_atomically(target, lambda tmp: tmp.write_text("new")) == target
    assert target.read_text() == "new"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".entry.txt.") and tmp.suffix == ".part"
        tmp.write_text("newer")
    assert target.read_text() == "newer"
    stale = tmp_path / f".entry.txt.{os.getpid() + 10**6}.1.part"  # a writer killed mid-way
    stale.write_text("partial")
    with entry_lock(target):
        sweep_dead_writers(target)
    assert not stale.exists() and target.read_text() == "newer"
