"""Rotations: uniform sampling on SO(3) and RELION's ZYZ Euler angles.

RELION's matrix ``A = Euler_angles2matrix(rot, tilt, psi)`` maps a point ``r`` of the reference (model)
frame to ``A @ r`` in the frame of the particle image, whose projection runs along the new z.
"""

from __future__ import annotations

import numpy as np

__all__ = ["euler_to_matrix", "matrix_to_euler", "quaternion_to_matrix", "random_quaternions"]


def random_quaternions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit quaternions ``(w, x, y, z)`` uniform on SO(3): normalised 4-D standard normal vectors."""
    q = rng.standard_normal((n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(n, 3, 3)`` of unit quaternions ``(n, 4)`` (w, x, y, z)."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def euler_to_matrix(rot: np.ndarray, tilt: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """RELION's ``Euler_angles2matrix`` for angles in degrees (arrays of shape ``(n,)``) -> ``(n, 3, 3)``."""
    a, b, g = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.stack([
        np.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], -1),
        np.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], -1),
        np.stack([sc, ss, cb], -1),
    ], -2)


def matrix_to_euler(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rot, tilt, psi)`` in degrees with ``euler_to_matrix(rot, tilt, psi) == matrices`` (tilt in [0, 180])."""
    m = np.asarray(matrices, dtype=np.float64)
    tilt = np.arccos(np.clip(m[..., 2, 2], -1.0, 1.0))
    sin_tilt = np.sqrt(m[..., 0, 2] ** 2 + m[..., 1, 2] ** 2)
    general = sin_tilt > 1e-9
    rot = np.where(general, np.arctan2(m[..., 2, 1], m[..., 2, 0]), 0.0)
    # At tilt 0 or 180 only rot + psi (or psi - rot) is defined; put it all in psi as RELION does.
    psi = np.where(general, np.arctan2(m[..., 1, 2], -m[..., 0, 2]),
                   np.where(m[..., 2, 2] > 0, np.arctan2(-m[..., 1, 0], m[..., 0, 0]),
                            np.arctan2(m[..., 1, 0], -m[..., 0, 0])))
    return np.rad2deg(rot), np.rad2deg(tilt), np.rad2deg(psi)
