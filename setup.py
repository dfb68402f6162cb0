"""The native row-image decoder (syncd/source/_rowimage.c) is optional: when it cannot be built,
syncd decodes with the fast path's generated Python (see docs/operations.md)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("syncd.source._rowimage", ["syncd/source/_rowimage.c"], optional=True,
                             extra_compile_args=["-O2"])])
