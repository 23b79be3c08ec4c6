"""mssfs: mount MSS (Meituan Storage Service) or any S3-compatible store as a filesystem.

The package is a library and an application. ``mssfs.store`` is a self-contained S3
client (it knows S3, not POSIX); ``mssfs.filesystem`` holds the POSIX behaviour on top of
it; ``mssfs.fuse_ops`` and ``mssfs.mount`` connect that to the kernel through mfusepy;
``mssfs.cli`` is the ``mssfs`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
