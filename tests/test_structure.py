"""The package's modules import one another one way: no cycle, even through imports inside functions."""
import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "slamp"


def import_graph() -> dict[str, set[str]]:
    """``{module: the slamp modules it imports}``, from every import statement (top level or not)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else
                       [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert {"slamp.checkpoint", "slamp.pretrained", "slamp.release", "slamp.run"} <= set(graph)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for following in graph[todo.pop()] - seen:
                if following == goal:
                    return True
                seen.add(following)
                todo.append(following)
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, f"import cycles (pairs of modules that reach each other): {cycles}"
