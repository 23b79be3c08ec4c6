"""The import arrows of DESIGN.md §2, checked on the source with ``ast``.

    cli → mount → fuse_ops → filesystem → namespace → metadata_cache
                                  ├──→ read_cache (+ prefetch), handles
                                  ├──→ uploader, write_buffer
                                  └──→ store.base ← store.http, store.memory
    every module → errors, paths, config;  store/* imports nothing outside store/

Each module has a rank; a module may import only modules of a lower or equal rank, and
there is no cycle (imports under ``if TYPE_CHECKING:`` are annotations and do not
count). A module not listed gets the rank of the filesystem's own helpers
(a split-out ``dir_ops.py`` or ``xattrs.py``), so a new module cannot point upwards
unnoticed.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "mssfs"

RANKS = {
    "attributes": 1, "errors": 1, "config": 1, "paths": 1, "posix_meta": 1, "cache_journal": 1,
    "metadata_cache": 2, "read_cache": 2, "disk_cache": 2, "recovery": 2, "handles": 2,
    "extents": 1,
    "staging": 2, "tail": 2,
    "page_versions": 2, "passthrough": 2,
    "credentials": 2,
    "prefetch": 3, "uploader": 3, "write_buffer": 3, "stage": 3,
    "namespace": 4,
    "filesystem": 6,
    "fuse_ops": 7, "mount": 8, "cli": 9, "__main__": 10, "__init__": 10,
    "devserver": 10,  # a tool for tests and the demo: starts servers, imports the store only
}
HELPER_RANK = 5  # filesystem helpers split by mechanism (dir_ops, renames, xattrs...)
BINDINGS = {"mfusepy", "fuse", "fusepy"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield ".".join(parts), ast.parse(path.read_text(), str(path))


def type_checking_only(tree):
    """Nodes under ``if TYPE_CHECKING:``: annotations, not imports at run time."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imported(tree, name):
    """Absolute names of everything a module imports at run time (anywhere in it)."""
    package = ["mssfs", *name.split(".")[:-1]]
    skipped = type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def internal(tree, name):
    """mssfs modules imported by ``name`` (without the ``mssfs.`` prefix), existing ones."""
    found = set()
    for target in imported(tree, name):
        if target.startswith("mssfs."):
            short = target[len("mssfs."):]
            if (PACKAGE / (short.replace(".", "/") + ".py")).exists():
                found.add(short)
    found.discard(name)
    return found


def rank(name):
    if name.startswith("store."):
        return 0
    return RANKS.get(name, HELPER_RANK)


ALL = dict(modules())


def test_the_package_is_parsed():
    assert {"cli", "mount", "fuse_ops", "config", "errors", "store.base"} <= set(ALL)


@pytest.mark.parametrize("name", sorted(ALL))
def test_imports_point_down(name):
    for target in internal(ALL[name], name):
        assert rank(target) <= rank(name), f"{name} (rank {rank(name)}) imports {target}"


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.startswith("store.")))
def test_store_imports_nothing_outside_store(name):
    for target in imported(ALL[name], name):
        if target.startswith("mssfs"):
            assert target.startswith("mssfs.store"), f"{name} imports {target}"


@pytest.mark.parametrize("name", sorted(ALL))
def test_only_fuse_ops_imports_the_binding(name):
    roots = {target.split(".")[0] for target in imported(ALL[name], name)}
    if name != "fuse_ops":
        assert not roots & BINDINGS, f"{name} imports the FUSE binding"


def test_fuse_ops_is_imported_only_by_mount_and_mount_only_by_cli():
    for name, tree in ALL.items():
        targets = internal(tree, name)
        if "fuse_ops" in targets:
            assert name == "mount", name
        if "mount" in targets:
            assert name == "cli", name
        if "cli" in targets:
            assert name == "__main__", name


@pytest.mark.parametrize("name", sorted(set(ALL) - {"cli", "devserver", "__main__"}))
def test_only_cli_reads_argv_and_environment(name):
    for node in ast.walk(ALL[name]):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            assert pair not in {("os", "environ"), ("os", "getenv"), ("sys", "argv")}, (
                f"{name} reads {pair[0]}.{pair[1]}")


def test_no_import_cycles():
    graph = {name: internal(tree, name) for name, tree in ALL.items()}
    done, active = set(), []

    def visit(node):
        if node in active:
            raise AssertionError("import cycle: " + " → ".join([*active, node]))
        if node in done:
            return
        active.append(node)
        for target in graph.get(node, ()):
            visit(target)
        active.pop()
        done.add(node)

    for name in graph:
        visit(name)
