"""The C parts are optional: when they cannot be built, syncd runs on their Python equivalents
(see docs/operations.md): the row-image decoder (syncd/source/_rowimage.c) falls back to the
fast path's generated Python, the COPY text of datetimes (syncd/sink/_pgtext.c) to psycopg's."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("syncd.source._rowimage", ["syncd/source/_rowimage.c"], optional=True, extra_compile_args=["-O2"]),
    Extension("syncd.sink._pgtext", ["syncd/sink/_pgtext.c"], optional=True, extra_compile_args=["-O2"]),
])
