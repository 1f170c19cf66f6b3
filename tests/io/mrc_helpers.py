"""Test helpers that rewrite real MRC files (independently of the code under test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_big_endian(path: Path) -> None:
    """Rewrite a little-endian MRC file written by mrcfile as the same file in big-endian byte order."""
    raw = bytearray(path.read_bytes())
    header = np.frombuffer(bytes(raw[:224]), "<i4").copy()
    floats = {10, 11, 12, 13, 14, 15, 19, 20, 21, 49, 50, 51, 54}  # CELLA/B, DMIN/MAX/MEAN, ORIGIN, RMS
    words = []
    for i, word in enumerate(header):
        if i in (52, 53):  # 'MAP ' and MACHST are written below
            words.append(int(word).to_bytes(4, "little", signed=True))
        elif i in floats:
            words.append(np.array(word, "<i4").view("<f4").astype(">f4").tobytes())
        else:
            words.append(np.array(word, ">i4").tobytes())
    raw[:224] = b"".join(words)
    raw[212:216] = b"\x11\x11\x00\x00"
    mode = int(header[3])
    dtype = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}[mode]
    offset = 1024 + int(header[23])
    data = np.frombuffer(bytes(raw[offset:]), "<" + dtype)
    raw[offset:] = data.astype(">" + dtype).tobytes()
    path.write_bytes(bytes(raw))


def mrcfile_read(path: Path) -> np.ndarray:
    """mrcfile's data for a file, read permissively (some real stacks lack the MAP tag and MACHST)."""
    import warnings

    import mrcfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(path, permissive=True) as mrc:
            return np.array(mrc.data)
