"""Builds the block-budget hook (a plain shared library loaded with ctypes)."""
import os

from setuptools import Extension, setup


def unicorn_include_dir() -> str:
    import unicorn

    return os.path.join(os.path.dirname(unicorn.__file__), "include")


setup(
    ext_modules=[
        Extension(
            "armvisor.cpu._hooks",
            sources=["src/armvisor/cpu/_hooks.c"],
            include_dirs=[unicorn_include_dir()],
            extra_compile_args=["-O2"],
        )
    ]
)
