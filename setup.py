"""Package layout that pyproject.toml cannot express: the top-level ``catalogs/`` folder ships as package data.

``catalogs/`` stays the source of truth (the repository's documented layout); it is mapped into the
distribution as ``perc_platform._catalogs``, so ``perc_platform.catalogs.catalog_path`` finds it through
``importlib.resources`` in a wheel, a plain ``pip install .`` and an editable install alike.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(".", include=["perc_platform", "perc_platform.*"]),
              *find_packages("plugins", include=["intake_perc", "intake_perc.*"]),
              "perc_platform._catalogs"],
    package_dir={"intake_perc": "plugins/intake_perc", "perc_platform._catalogs": "catalogs"},
    package_data={"perc_platform": ["py.typed"], "perc_platform._catalogs": ["*.yaml"]},
)
