"""cryoSPARC ``.cs`` particle tables: real files against cryosparc-tools, poses against hand-computed cases,
and a ``.cs`` file with its stack against the equivalent STAR file (converted independently here)."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from cryosparc.dataset import Dataset
from scipy.spatial.transform import Rotation

import perc_platform as pp
from perc_platform.errors import CsFormatError, DataNotFoundError, PercError
from perc_platform.io import cs_particle_metadata, read_cs
from perc_platform.storage.policy import grant_host

META = "metadata"


def relion_matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's Euler_angles2matrix (src/euler.cpp), written out by hand: the independent reference."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, cb, cg, sa, sb, sg = np.cos(a), np.cos(b), np.cos(g), np.sin(a), np.sin(b), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array([[cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
                     [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
                     [sc, ss, cb]])


def rodrigues(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector, by the Rodrigues formula."""
    theta = float(np.linalg.norm(v))
    if theta == 0:
        return np.eye(3)
    k = np.asarray(v) / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


@pytest.mark.parametrize("name", ["cryosparc_P12_J24_001_particles.cs", "cryosparc_J2_particles_exported.cs"])
def test_real_cs_files_match_cryosparc_tools(shared: Path, name: str) -> None:
    path = shared / META / name
    reference = Dataset.load(str(path))
    meta = cs_particle_metadata(read_cs(str(path)), str(path))
    assert len(meta.stack_names) == len(reference) == meta.image_index.size
    paths = [p[1:] if p.startswith(">") else p for p in reference["blob/path"].tolist()]
    assert meta.stack_names == paths
    np.testing.assert_array_equal(meta.image_index, reference["blob/idx"])
    np.testing.assert_allclose(meta.coords["defocus_u"], reference["ctf/df1_A"])
    np.testing.assert_allclose(meta.coords["defocus_v"], reference["ctf/df2_A"])
    np.testing.assert_allclose(meta.coords["defocus_angle"], np.degrees(reference["ctf/df_angle_rad"]), rtol=1e-6)
    assert meta.attrs["voltage"] == float(np.unique(reference["ctf/accel_kv"])[0])
    assert meta.attrs["pixel_size"] == pytest.approx(float(np.unique(reference["blob/psize_A"])[0]))
    kind = "alignments3D" if "alignments3D/pose" in reference.fields() else "alignments2D"
    pixel = reference[f"{kind}/psize_A"].astype(np.float64)
    np.testing.assert_allclose(meta.coords["shift_x"], reference[f"{kind}/shift"][:, 0] * pixel, rtol=1e-6)
    np.testing.assert_allclose(meta.coords["shift_y"], reference[f"{kind}/shift"][:, 1] * pixel, rtol=1e-6)
    np.testing.assert_array_equal(meta.coords["class_number"], reference[f"{kind}/class"].astype(int) + 1)
    if kind == "alignments3D":
        for i in range(0, len(reference), 97):  # RELION's matrix of the angles is the transposed Rodrigues matrix
            angles = [meta.coords[f"angle_{a}"][i] for a in ("rot", "tilt", "psi")]
            np.testing.assert_allclose(relion_matrix(*angles), rodrigues(reference[f"{kind}/pose"][i]).T, atol=1e-5)
    else:
        np.testing.assert_allclose(meta.coords["angle_psi"], np.degrees(reference["alignments2D/pose"]), rtol=1e-6)


def test_pose_hand_computed_cases(tmp_path: Path) -> None:
    # A quarter turn about y is tilt 90; about x it is rot -90, tilt 90, psi 90 (Rx = Rz(-90) Ry(90) Rz(90));
    # about z it is tilt 0 with rot + psi = 90.
    poses = np.array([[0, np.pi / 2, 0], [np.pi / 2, 0, 0], [0, 0, np.pi / 2]], np.float32)
    table = np.zeros(3, dtype=[("blob/path", "S8"), ("blob/idx", "<u4"), ("alignments3D/pose", "<f4", (3,))])
    table["blob/path"], table["blob/idx"], table["alignments3D/pose"] = b"s.mrcs", [0, 1, 2], poses
    meta = cs_particle_metadata(table, "hand")
    got = np.stack([meta.coords[f"angle_{a}"] for a in ("rot", "tilt", "psi")], axis=1)
    np.testing.assert_allclose(got[0], [0, 90, 0], atol=1e-5)
    np.testing.assert_allclose(got[1], [-90, 90, 90], atol=1e-5)
    assert got[2][1] == pytest.approx(0, abs=1e-5) and got[2][0] + got[2][2] == pytest.approx(90, abs=1e-5)


def _write_stack(path: Path, data: np.ndarray) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)


def test_cs_and_star_give_the_same_particles(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n, box, pixel = 12, 16, 1.7
    stacks = {"a.mrcs": rng.normal(size=(7, box, box)).astype(np.float32),
              "b.mrcs": rng.normal(size=(9, box, box)).astype(np.float32)}
    (tmp_path / "J5" / "extract").mkdir(parents=True)
    for name, data in stacks.items():
        _write_stack(tmp_path / "J5" / "extract" / name, data)
    which = rng.choice(list(stacks), size=n)
    index = np.array([rng.integers(stacks[w].shape[0]) for w in which])
    euler = np.stack([rng.uniform(-180, 180, n), rng.uniform(5, 175, n), rng.uniform(-180, 180, n)], axis=1)
    rotvec = np.array([Rotation.from_matrix(relion_matrix(*e).T).as_rotvec() for e in euler])
    shift_px = rng.uniform(-4, 4, size=(n, 2))
    df1, df2 = rng.uniform(8000, 30000, n), rng.uniform(8000, 30000, n)
    angle = rng.uniform(-np.pi, np.pi, n)
    cls, split = rng.integers(0, 3, n), rng.integers(0, 2, n)

    table = np.zeros(n, dtype=[("uid", "<u8"), ("blob/path", "S40"), ("blob/idx", "<u4"),
                               ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"), ("ctf/accel_kv", "<f4"),
                               ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"),
                               ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"), ("ctf/phase_shift_rad", "<f4"),
                               ("ctf/exp_group_id", "<u4"),
                               ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,)),
                               ("alignments3D/psize_A", "<f4"), ("alignments3D/class", "<u4"),
                               ("alignments3D/split", "<u4")])
    table["uid"] = rng.integers(0, 2**62, n, dtype=np.int64)
    table["blob/path"] = [f">J5/extract/{w}".encode() for w in which]
    table["blob/idx"], table["blob/shape"], table["blob/psize_A"] = index, (box, box), pixel
    table["ctf/accel_kv"], table["ctf/cs_mm"], table["ctf/amp_contrast"] = 300, 2.7, 0.1
    table["ctf/df1_A"], table["ctf/df2_A"], table["ctf/df_angle_rad"] = df1, df2, angle
    table["ctf/phase_shift_rad"] = 0.25
    table["alignments3D/pose"], table["alignments3D/shift"] = rotvec, shift_px
    table["alignments3D/psize_A"], table["alignments3D/class"], table["alignments3D/split"] = pixel, cls, split
    cs_path = tmp_path / "P1_J9_particles.cs"
    with open(cs_path, "wb") as handle:  # a .cs file is np.save's format under another suffix
        np.save(handle, table)

    stored = table  # the float32 values as stored are what the STAR file must say
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@J5/extract/{w}" for i, w in zip(index, which, strict=True)],
        "rlnDefocusU": stored["ctf/df1_A"].astype(float), "rlnDefocusV": stored["ctf/df2_A"].astype(float),
        "rlnDefocusAngle": np.degrees(stored["ctf/df_angle_rad"].astype(float)),
        "rlnPhaseShift": np.degrees(stored["ctf/phase_shift_rad"].astype(float)),
        "rlnAngleRot": euler[:, 0], "rlnAngleTilt": euler[:, 1], "rlnAnglePsi": euler[:, 2],
        "rlnOriginXAngst": stored["alignments3D/shift"][:, 0].astype(float) * float(np.float32(pixel)),
        "rlnOriginYAngst": stored["alignments3D/shift"][:, 1].astype(float) * float(np.float32(pixel)),
        "rlnClassNumber": cls + 1, "rlnRandomSubset": split + 1, "rlnOpticsGroup": 1})
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnVoltage": [300.0], "rlnSphericalAberration": [2.7],
                           "rlnAmplitudeContrast": [0.1], "rlnImagePixelSize": [pixel], "rlnImageSize": [box]})
    star_path = tmp_path / "equivalent.star"
    starfile.write({"optics": optics, "particles": particles}, star_path, float_format="%.10g")

    from_cs = pp.open_particles(star=cs_path)
    from_star = pp.open_particles(star=star_path)
    expected = np.stack([stacks[w][i] for w, i in zip(which, index, strict=True)])
    np.testing.assert_array_equal(from_cs.values, expected)
    np.testing.assert_array_equal(from_star.values, expected)
    for key in ("pixel_size", "voltage", "spherical_aberration", "amplitude_contrast"):
        assert from_cs.attrs[key] == pytest.approx(from_star.attrs[key], rel=1e-6), key
    for coord in ("defocus_u", "defocus_v", "defocus_angle", "phase_shift", "shift_x", "shift_y",
                  "class_number", "random_subset", "optics_group", "image_name"):
        if from_cs[coord].dtype.kind in "US":
            np.testing.assert_array_equal(from_cs[coord].values, from_star[coord].values, err_msg=coord)
        else:
            np.testing.assert_allclose(from_cs[coord].values, from_star[coord].values, rtol=1e-6, err_msg=coord)
    # Poses: the same rotation (compared as matrices), and the same angles where the decomposition is unique.
    for i in range(n):
        a = [float(from_cs[f"angle_{x}"][i]) for x in ("rot", "tilt", "psi")]
        b = [float(from_star[f"angle_{x}"][i]) for x in ("rot", "tilt", "psi")]
        np.testing.assert_allclose(relion_matrix(*a), relion_matrix(*b), atol=2e-6)
        np.testing.assert_allclose((np.array(a) - b + 180) % 360 - 180, 0, atol=1e-4)
    assert from_cs.attrs["source_uri"] == str(cs_path)
    assert from_cs["uid"].dtype == np.uint64


def _save(path: Path, array: object, allow_pickle: bool = False) -> Path:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=allow_pickle)
    return path


def _good(n: int = 2) -> np.ndarray:
    table = np.zeros(n, dtype=[("blob/path", "S8"), ("blob/idx", "<u4")])
    table["blob/path"] = b"s.mrcs"
    return table


@pytest.mark.parametrize("case", ["text", "truncated", "pickle", "plain", "2d", "no_idx", "pose_shape",
                                  "path_float", "negative", "empty"])
def test_hostile_cs_files_give_clear_errors(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.cs"
    if case == "text":
        path.write_text("data_particles\nloop_\n_rlnImageName\n")
    elif case == "truncated":
        _save(path, _good(50))
        path.write_bytes(path.read_bytes()[:-30])
    elif case == "pickle":
        _save(path, np.array([{"blob/path": "x"}], dtype=object), allow_pickle=True)
    elif case == "plain":
        _save(path, np.arange(5.0))
    elif case == "2d":
        _save(path, _good(4).reshape(2, 2))
    elif case == "no_idx":
        _save(path, np.zeros(2, dtype=[("blob/path", "S8")]))
    elif case == "pose_shape":
        _save(path, np.zeros(2, dtype=[("blob/path", "S8"), ("blob/idx", "<u4"), ("alignments3D/pose", "<f4", (4,))]))
    elif case == "path_float":
        _save(path, np.zeros(2, dtype=[("blob/path", "<f4"), ("blob/idx", "<u4")]))
    elif case == "negative":
        table = np.zeros(2, dtype=[("blob/path", "S8"), ("blob/idx", "<i4")])
        table["blob/path"], table["blob/idx"] = b"s.mrcs", [0, -1]
        _save(path, table)
    elif case == "empty":
        _save(path, _good(0))
    with pytest.raises(CsFormatError, match="bad.cs"):
        pp.open_particles(star=path)


def test_cs_index_beyond_stack_and_missing_files(tmp_path: Path) -> None:
    _write_stack(tmp_path / "s.mrcs", np.zeros((2, 8, 8), np.float32))
    table = _good(3)
    table["blob/idx"] = [0, 1, 2]
    path = _save(tmp_path / "over.cs", table)
    with pytest.raises(CsFormatError, match="image 3 of .*s.mrcs, which holds 2"):
        pp.open_particles(star=path)
    with pytest.raises(DataNotFoundError, match="missing.cs"):
        pp.open_particles(star=tmp_path / "missing.cs")
    table["blob/path"] = b"gone.mrc"
    with pytest.raises(PercError, match="gone.mrc"):
        pp.open_particles(star=_save(tmp_path / "gone.cs", table))


def test_remote_cs_file_with_its_stack(tmp_path: Path, server_factory) -> None:
    data = np.random.default_rng(2).normal(size=(4, 8, 8)).astype(np.float32)
    _write_stack(tmp_path / "s.mrcs", data)
    table = _good(3)
    table["blob/path"] = b">s.mrcs"
    table["blob/idx"] = [3, 0, 2]
    _save(tmp_path / "p.cs", table)
    srv = server_factory(tmp_path)
    grant_host(srv.url)
    images = pp.open_particles(star=f"{srv.url}/p.cs")
    np.testing.assert_array_equal(images.values, data[[3, 0, 2]])
