"""``perc demo``: the whole platform on the embedded default, offline, in a few minutes on 2 cores."""

from perc_platform.demo._data import DemoArchive as DemoArchive
from perc_platform.demo._data import build_mini_archive as build_mini_archive
from perc_platform.demo._run import run_demo as run_demo

__all__ = ["DemoArchive", "build_mini_archive", "run_demo"]
