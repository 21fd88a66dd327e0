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


# The three images have one name each, the paper's: x̂ `x_hat`, x^p `x_p`, x^f `x_f` (slamp.renamed
# keeps the older names, to read older logs, result files and command lines).
OLD_IMAGE_NAMES = [
    r"""["'](final|pixel)["']""",  # loss terms and heads
    r"""\b(prediction|futures|generated|samples?|batched|stepwise|out|parts)\.(frames|appearance|motion)\b""",
    r"""generate\([^)]*\)\.(frames|appearance|motion)\b""",  # model.generate(...).frames
    r"""heads=\(["'](appearance|motion)""",
    r"""parts\[["'](frames|appearance|motion)["']\]""",
]


def test_the_three_images_have_one_name_each():
    import re

    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *root.glob("notebooks/*.py"), *root.glob("tools/*.py"),
             *root.glob("benchmarks/*.py"), root / "README.md"]
    allowed = {PACKAGE / "renamed.py"}
    found = []
    for path in sorted(set(files) - allowed):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "_renamed(" in line or "slamp.renamed" in line:  # the warning aliases themselves
                continue
            found += [f"{path.relative_to(root)}:{number}: {line.strip()}" for pattern in OLD_IMAGE_NAMES
                      if re.search(pattern, line)]
    assert not found, "older names of x̂, x^p, x^f:\n" + "\n".join(found)
