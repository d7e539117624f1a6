"""Build script: compiles src/_filters.pyx into smtpstream._filters.

SMTPSTREAM_NO_EXTENSIONS=1 builds a pure-Python package.
SMTPSTREAM_REQUIRE_EXTENSIONS=1 makes a failed compile an error instead of a
silent fallback (CI sets it, so a broken build cannot hide behind the twin).
"""
import os
import platform

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("SMTPSTREAM_NO_EXTENSIONS") == "1" or (
    platform.python_implementation() != "CPython"
)
REQUIRE_EXTENSIONS = os.environ.get("SMTPSTREAM_REQUIRE_EXTENSIONS") == "1"

ext_modules = []
if not NO_EXTENSIONS:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension(
                "smtpstream._filters",
                ["src/_filters.pyx"],
                extra_compile_args=["-O3"],
                optional=not REQUIRE_EXTENSIONS,
            )
        ],
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
    print("* Accelerated build *")
else:
    print("* Pure Python build *")

setup(ext_modules=ext_modules)
