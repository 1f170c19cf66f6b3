"""Simulation: molmap-style density maps and particle images (projections, CTF, noise) from atomic models."""

from perc_platform.processing._export import write_particles as write_particles
from perc_platform.simulate._density import density_map as density_map
from perc_platform.simulate._particles import particles as particles
from perc_platform.simulate._particles import project_atoms as project_atoms
from perc_platform.simulate._rotations import euler_to_matrix as euler_to_matrix
from perc_platform.simulate._rotations import matrix_to_euler as matrix_to_euler
from perc_platform.simulate._rotations import random_quaternions as random_quaternions

__all__ = [
    "density_map",
    "euler_to_matrix",
    "matrix_to_euler",
    "particles",
    "project_atoms",
    "random_quaternions",
    "write_particles",
]
