"""The shipped Intake catalogs, installed as the package ``perc_platform._catalogs`` (see setup.py).

Open them through ``perc_platform.catalogs.catalog_path(name)``; this file only makes the folder a package
that editable installs can map (setuptools maps packages, not bare data folders).
"""
