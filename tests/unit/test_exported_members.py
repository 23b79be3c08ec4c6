"""The public surface: what ``mssfs`` and ``mssfs.store`` export, and nothing by accident."""

import mssfs
import mssfs.store


def test_mssfs_exports():
    assert mssfs.__all__ == ["ConfigError", "MountConfig", "Source", "__version__"]
    for name in mssfs.__all__:
        assert hasattr(mssfs, name)


def test_every_public_name_of_mssfs_is_in_all():
    public = {name for name in vars(mssfs) if not name.startswith("_")}
    # Submodules appear as attributes once imported anywhere; they are not exports.
    public = {n for n in public if type(getattr(mssfs, n)).__name__ != "module"}
    assert public == set(mssfs.__all__) - {"__version__"}


def test_store_exports_exist():
    for name in mssfs.store.__all__:
        assert hasattr(mssfs.store, name), name
    assert {"ObjectStore", "StoreConfig", "Credentials"} <= set(mssfs.store.__all__)


def test_version_is_a_string():
    assert isinstance(mssfs.__version__, str) and mssfs.__version__.count(".") == 2
