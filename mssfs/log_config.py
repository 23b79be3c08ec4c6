"""Logging of the mount: where records go, at which level, and secrets masked.

How it works. ``setup_logging`` gives the ``mssfs`` logger one handler: the ``--log-file``,
else stderr in the foreground, else ``$XDG_STATE_HOME/mssfs/mount.log``; INFO, or DEBUG
with ``--debug`` (every S3 request: method, operation, bucket, key, status, bytes,
milliseconds, logged by ``store.http``). ``SecretFilter`` on that handler masks the
secret key and session token should any message or argument ever carry one.

No lock of its own (``logging`` locks its handlers), no thread.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from mssfs.config import MountConfig

__all__ = ["LOG_FORMAT", "SecretFilter", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


class SecretFilter(logging.Filter):
    """Masks secrets in any record, should a message ever carry one."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def setup_logging(config: MountConfig, env: Mapping[str, str], secrets: Sequence[str]) -> None:
    """``mssfs`` logger: INFO (DEBUG with --debug) to stderr with -f, else to a file."""
    logger = logging.getLogger("mssfs")
    logger.setLevel(logging.DEBUG if config.debug else logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    if config.log_file:
        handler: logging.Handler = logging.FileHandler(config.log_file)
    elif config.foreground:
        handler = logging.StreamHandler(sys.stderr)
    else:
        state = env.get("XDG_STATE_HOME") or os.path.join(
            env.get("HOME") or os.path.expanduser("~"), ".local", "state")
        os.makedirs(os.path.join(state, "mssfs"), mode=0o700, exist_ok=True)
        handler = logging.FileHandler(os.path.join(state, "mssfs", "mount.log"))
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretFilter(secrets))
    logger.addHandler(handler)
    logger.propagate = False
    # The binding logs its own callback errors at DEBUG; ours are logged in fuse_ops.
    logging.getLogger("mfusepy").setLevel(logging.WARNING)
