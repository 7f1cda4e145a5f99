"""The house's walls, read from the source: who may import whom, and how long a module may grow.

The floors (ARCHITECTURE.md, "Floors and rooms"):

- ``schemas/``: the contract. Imports nothing of ours but itself, and nothing that does I/O.
- ``ops/runtime/``: the floor the services stand on (settings, Kafka wrappers, the output store,
  topic provisioning, process entry and supervision). Imports only ``schemas/`` and itself.
- the services, ``gateway/``, ``streams/``, ``gpu_consumers/``: each imports ``schemas/``, the runtime
  floor and itself; never another service, the tooling or ``tests/``.
- the tooling, the rest of ``ops/`` (CLI, local stack, system, topics command, demo, benches): may
  import everything above, never ``tests/``.

Imports are read wherever they are written (inside functions too, where lazy imports hide) and
``importlib.import_module("...")`` calls with a literal name count as imports. A module longer than
:data:`MAX_LINES` needs a ``# size:`` comment near its top saying why it is one concept.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "gateway", "streams", "gpu_consumers", "ops")
SERVICES = frozenset({"gateway", "streams", "gpu_consumers"})
RUNTIME = "ops.runtime"
MAX_LINES = 400
SIZE_MARKER = "# size:"
# Modules that reach a network, a database, a process or a thread: none belongs in the contract.
IO_MODULES = frozenset(
    {
        "aiokafka", "asyncio", "confluent_kafka", "faust", "ftplib", "http", "httpx", "multiprocessing",
        "pymongo", "requests", "selectors", "shutil", "signal", "smtplib", "socket", "socketserver",
        "sqlite3", "ssl", "starlette", "subprocess", "tempfile", "threading", "urllib", "uvicorn",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it imports, dotted
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (module level or not), relative ones resolved against ``module``."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if node.module is not None:
                found.append(Import(module, target, node.lineno))
            # ``from . import x`` / ``from pkg import sub``: the names may be modules themselves.
            found.extend(Import(module, f"{target}.{alias.name}", node.lineno) for alias in node.names)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and _literal(node.args):
            found.append(Import(module, node.args[0].value, node.lineno))  # type: ignore[attr-defined]
    return found


def _literal(args: list[ast.expr]) -> bool:
    return bool(args) and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def floor_of(module: str) -> str:
    """``schemas``, ``runtime``, a service's name, ``tooling``, ``tests`` or ``outside`` (stdlib, PyPI)."""
    top = module.split(".")[0]
    if module == RUNTIME or module.startswith(RUNTIME + "."):
        return "runtime"
    if top == "ops":
        return "tooling"
    if top in SERVICES or top in {"schemas", "tests"}:
        return top
    return "outside"


def violation(imp: Import) -> str | None:
    """Why ``imp`` breaks a wall, or ``None`` when it is allowed."""
    source, target = floor_of(imp.module), floor_of(imp.target)
    if target == "outside":
        if source == "schemas" and imp.target.split(".")[0] in IO_MODULES:
            return "schemas/ does no I/O"
        return None
    if target == "tests" and source != "tests":
        return "only tests import tests/"
    if source == "schemas" and target != "schemas":
        return "schemas/ imports only itself"
    if source == "runtime" and target not in {"runtime", "schemas"}:
        return "ops/runtime/ imports only schemas/ and itself"
    if source in SERVICES and target not in {source, "schemas", "runtime"}:
        kind = "another service" if target in SERVICES else f"the {target}"
        return f"a service imports only schemas/, ops/runtime/ and itself, not {kind}"
    return None


def product_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for package in PACKAGES for p in (root / package).rglob("*.py"))


def broken_walls(root: Path = ROOT) -> list[str]:
    broken: dict[str, str] = {}  # one line per import statement, however many names it imports
    for path in product_files(root):
        source, module = path.read_text(encoding="utf-8"), module_name(path, root)
        for imp in imports_of(source, module, is_package=path.name == "__init__.py"):
            why = violation(imp)
            if why:
                broken.setdefault(f"{path.relative_to(root)}:{imp.line}", f"imports {imp.target}: {why}")
    return [f"{where} {what}" for where, what in broken.items()]


def oversized(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Modules past :data:`MAX_LINES` without a ``# size:`` comment in their first 40 lines."""
    found = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_LINES and not any(line.lstrip().startswith(SIZE_MARKER) for line in lines[:40]):
            found.append(f"{path.relative_to(root)}: {len(lines)} lines, no '{SIZE_MARKER} why' comment")
    return found


# -- the walls hold ---------------------------------------------------------------------------------


def test_no_import_breaks_a_wall() -> None:
    assert broken_walls() == []


def test_no_module_outgrows_the_house_without_a_reason() -> None:
    assert oversized(product_files() + sorted((ROOT / "tests").rglob("*.py"))) == []


# -- and the test would see each leak we have had -----------------------------------------------------

LEAKS = [
    # the services' settings looked for the local stack themselves
    ("gateway.settings", "def f():\n    from ops.stack import local_bootstrap_servers\n", "not the tooling"),
    ("streams.settings", "def _local():\n    from ops.stack import local_mongodb_url\n", "not the tooling"),
    ("gpu_consumers.settings", "if x:\n    from ops.stack import local_bootstrap_servers\n", "the tooling"),
    # python -m gpu_consumers ran the whole CLI, which loaded every service back through importlib
    ("gpu_consumers.__main__", "from ops.cli import main\n", "not the tooling"),
    ("ops.runtime.entry", "import importlib\nimportlib.import_module('gateway.commands')\n", "ops/runtime/"),
    # a service provisioned its topics through the tooling's command module
    ("streams.commands", "from ops.topics import ensure_topics\n", "not the tooling"),
    # a bench built its data from the tests
    ("ops.bench.bench_streams", "from tests.streams.harness import Worker\n", "only tests import tests/"),
    ("gateway.app", "from streams.view import reduce\n", "not another service"),
    ("gateway.app", "from ..streams import view\n", "not another service"),
    ("schemas.codec", "import confluent_kafka\n", "schemas/ does no I/O"),
    ("schemas.codec", "from ops.runtime.config import Env\n", "schemas/ imports only itself"),
    ("ops.runtime.kafka", "from gateway.settings import GatewaySettings\n", "ops/runtime/"),
]


@pytest.mark.parametrize(("module", "source", "reason"), LEAKS)
def test_each_known_leak_is_caught(module: str, source: str, reason: str) -> None:
    reasons = [why for imp in imports_of(source, module) if (why := violation(imp))]
    assert reasons, f"{module}: {source!r} was let through"
    assert any(reason in why for why in reasons), reasons


ALLOWED = [
    ("gateway.app", "from ops.runtime.storage import LocalStore\nfrom schemas.codec import Codec\n"),
    ("gateway.app", "from gateway.routes import submit\nfrom . import settings\n"),
    ("ops.cli", "from gateway import commands\nfrom ops.stack import local_mongodb_url\n"),
    ("ops.runtime.config", "from schemas.records import TaskType\nimport os\n"),
    ("schemas.codec", "import io\nimport json\nfrom fastavro import schemaless_reader\n"),
    ("tests.streams.harness", "from ops.bench.streams_data import stories\nfrom tests.waiting import wait\n"),
]


@pytest.mark.parametrize(("module", "source"), ALLOWED)
def test_allowed_imports_pass(module: str, source: str) -> None:
    assert [why for imp in imports_of(source, module) if (why := violation(imp))] == []


def test_relative_imports_resolve_against_the_package() -> None:
    targets = {i.target for i in imports_of("from . import a\nfrom ..x import b\n", "streams.sub.mod")}
    assert targets == {"streams.sub.a", "streams.x", "streams.x.b"}
    assert {i.target for i in imports_of("from . import a\n", "streams", is_package=True)} == {"streams.a"}


def test_an_oversized_module_needs_a_reason(tmp_path: Path) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("x = 1\n" * (MAX_LINES + 1))
    argued = tmp_path / "argued.py"
    argued.write_text(
        '"""Doc."""\n# size: one table of rules, split it and you read it in two places\n'
        + "x = 1\n" * MAX_LINES
    )
    small = tmp_path / "small.py"
    small.write_text("x = 1\n" * MAX_LINES)
    assert oversized([plain, argued, small], tmp_path) == [
        f"plain.py: {MAX_LINES + 1} lines, no '# size: why' comment"
    ]
