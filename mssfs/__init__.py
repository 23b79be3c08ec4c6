"""mssfs: mount MSS (Meituan Storage Service) or any S3-compatible store as a filesystem.

The package is a library and an application. ``mssfs.store`` is a self-contained S3
client (it knows S3, not POSIX); ``mssfs.filesystem`` holds the POSIX behaviour on top of
it; ``mssfs.fuse_ops`` and ``mssfs.mount`` connect that to the kernel through mfusepy;
``mssfs.cli`` is the ``mssfs`` command.

The public surface is small: the version, and the configuration a program builds to
mount from Python (``mssfs.mount.run(MountConfig(...))``). It is imported lazily enough
that ``import mssfs`` needs neither libfuse nor a network.
"""

from mssfs.config import ConfigError, MountConfig, Source

__version__ = "0.1.0"

__all__ = ["ConfigError", "MountConfig", "Source", "__version__"]
