"""The documentation stays true: its code runs, its site builds, its API is complete.

- Every ```python block of ``docs/**/*.md`` and ``README.md`` runs, the
  blocks of a page in order in one fresh namespace, in a temporary working
  directory. A block whose first line is a skip marker (``# needs-download``
  or ``# needs-gpu``) is only compiled (a syntax check), and so is a block
  marked ``# needs-keras-hub`` where keras-hub is not installed: see
  ``docs/contributing.md``.
- ``mkdocs build --strict`` passes (once, under the TensorFlow backend: the
  site does not depend on the backend).
- Every name in ``keras_brnpa.__all__`` and in the ``__all__`` of each
  public submodule is on an API reference page (``docs/api/*.md``), and
  every public class and function has an example in its docstring.
- The figures script draws the figures the pages show, under 150 KB each,
  and the parts it draws land on the objects in brightness order.
"""

import importlib
import importlib.util
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_brnpa

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API = DOCS / "api"
SKIP_MARKERS = ("# needs-download", "# needs-gpu")
#: Markers of blocks that need an optional extra: run when its module is
#: installed, only compiled otherwise.
EXTRA_MARKERS = {"# needs-keras-hub": "keras_hub"}
MAX_FIGURE_BYTES = 150_000

# An opening fence ```python (or ```py, with optional attributes) and its
# closing fence at the same indentation (blocks may sit in admonitions).
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})[ \t]*(?:python|py)\b[^\n]*\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)(?P=ticks)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def markdown_pages():
    pages = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        pages.append(readme)
    return pages


def python_blocks(text):
    """``[(line number, code, skipped)]`` of the ```python blocks of ``text``."""
    blocks = []
    for match in _FENCE.finditer(text):
        indent = match.group("indent")
        lines = match.group("body").splitlines()
        code = "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines)
        first = code.lstrip().splitlines()[0].strip() if code.strip() else ""
        skipped = any(first.startswith(marker) for marker in SKIP_MARKERS) or any(
            first.startswith(marker) and importlib.util.find_spec(module) is None
            for marker, module in EXTRA_MARKERS.items()
        )
        lineno = text.count("\n", 0, match.start()) + 2
        blocks.append((lineno, code + "\n", skipped))
    return blocks


def _rel(page):
    return page.relative_to(ROOT).as_posix()


PAGES_WITH_CODE = [
    page
    for page in markdown_pages()
    if any(not skipped for _, _, skipped in python_blocks(page.read_text(encoding="utf-8")))
]


# ---------------------------------------------------------------- extraction
def test_block_extraction_and_markers():
    text = (
        "Intro\n\n```python\nx = 1\n```\n\n"
        "!!! note\n    ```python\n    y = x + 1\n    ```\n\n"
        "```python\n# needs-download\nimport tensorflow_datasets\n```\n\n"
        "```bash\nmake test\n```\n"
    )
    blocks = python_blocks(text)
    assert [(code, skipped) for _, code, skipped in blocks] == [
        ("x = 1\n", False),
        ("y = x + 1\n", False),
        ("# needs-download\nimport tensorflow_datasets\n", True),
    ]
    assert [lineno for lineno, _, _ in blocks] == [4, 9, 13]


def test_extra_markers_run_a_block_only_where_the_extra_is_installed(monkeypatch):
    text = "```python\n# needs-keras-hub\nimport keras_hub\n```\n"
    monkeypatch.setitem(EXTRA_MARKERS, "# needs-keras-hub", "keras_brnpa")  # installed
    assert python_blocks(text)[0][2] is False
    monkeypatch.setitem(EXTRA_MARKERS, "# needs-keras-hub", "no_such_module_xyz")
    assert python_blocks(text)[0][2] is True


def test_documentation_has_runnable_code():
    names = {_rel(page) for page in PAGES_WITH_CODE}
    for required in ("README.md", "docs/quickstart.md", "docs/how_it_works.md"):
        assert required in names, f"{required} has no runnable python block"


# -------------------------------------------------------------- code blocks
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_rel)
def test_page_code_runs(page, tmp_path, monkeypatch):
    """Run the page's blocks in order, in one namespace, in a temp directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    environ = dict(os.environ)
    argv, path = list(sys.argv), list(sys.path)
    namespace = {"__name__": "__main__"}
    try:
        for lineno, code, skipped in python_blocks(page.read_text(encoding="utf-8")):
            if skipped:
                continue
            exec(compile(code, f"{_rel(page)}:{lineno}", "exec"), namespace)
    finally:
        # A page may set environment variables or arguments: undo it.
        os.environ.clear()
        os.environ.update(environ)
        sys.argv[:], sys.path[:] = argv, path
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
        keras.utils.clear_session()


def test_skipped_blocks_compile():
    """Blocks that need downloads or a GPU are not run, but must be valid Python."""
    count = 0
    for page in markdown_pages():
        for lineno, code, skipped in python_blocks(page.read_text(encoding="utf-8")):
            if skipped:
                compile(code, f"{_rel(page)}:{lineno}", "exec")
                count += 1
    assert count >= 1, "the CUB tutorial's download blocks were not found"


def test_images_referenced_by_pages_exist():
    image = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
    for page in sorted(DOCS.rglob("*.md")):
        for target in image.findall(page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (page.parent / target).resolve().is_file(), f"{_rel(page)}: missing image {target}"


# ------------------------------------------------------------------ the site
def test_mkdocs_build_strict(tmp_path):
    if keras.config.backend() != "tensorflow":
        pytest.skip(
            "the site does not depend on the Keras backend: it is built once, "
            "under KERAS_BACKEND=tensorflow"
        )
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'keras-brnpa[docs]')")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = (tmp_path / "site" / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    # The docstring examples are rendered as code, not as quoted text.
    assert '<span class="gp">&gt;&gt;&gt; </span>' in html
    assert "keras_brnpa.BRNPAAttention" in html
    # Offline: no script or stylesheet from another site; formulas are
    # MathML written at build time, not LaTeX waiting for a script.
    site = tmp_path / "site"
    remote = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.I)
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        found = remote.search(text)
        assert found is None, f"{page.relative_to(site)}: remote resource {found.group(0)!r}"
    theory = (site / "how_it_works" / "index.html").read_text(encoding="utf-8")
    assert "<math" in theory and "\\(" not in theory and "$$" not in theory
    # The source repository is linked, long signatures are wrapped.
    assert 'class="md-source"' in theory
    models = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    signature = re.search(r'doc-signature highlight">(.*?)</div>', models, re.S)
    assert signature is not None and signature.group(1).count("\n") > 2


# ------------------------------------------------------------ API reference
def public_modules():
    """``keras_brnpa`` and its public submodules that declare ``__all__``."""
    modules = [keras_brnpa]
    for info in pkgutil.iter_modules(keras_brnpa.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"keras_brnpa.{info.name}")
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


def documented():
    """The objects and paths that the API pages document."""
    directive = re.compile(r"^:::[ \t]+([\w.]+)", re.MULTILINE)
    text = "\n".join(page.read_text(encoding="utf-8") for page in sorted(API.glob("*.md")))
    objects = {}
    for path in directive.findall(text):
        module_path, obj = path, None
        while module_path:
            try:
                obj = importlib.import_module(module_path)
                break
            except ImportError:
                module_path = module_path.rpartition(".")[0]
        assert module_path, f"API directive ::: {path} does not resolve"
        for attribute in path[len(module_path) :].split(".")[1:]:
            obj = getattr(obj, attribute, None)
            assert obj is not None, f"API directive ::: {path} does not resolve"
        objects[id(obj)] = path
    return objects, text


def test_every_public_name_is_in_the_api_reference():
    objects, text = documented()
    missing = []
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            path = f"{module.__name__}.{name}"
            if id(obj) in objects or path in text:
                continue
            missing.append(path)
    assert not missing, "not in docs/api/*.md: " + ", ".join(missing)


def test_public_classes_and_functions_have_examples():
    without = []
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if not (isinstance(obj, type) or callable(obj)) or type(obj).__name__ == "module":
                continue
            doc = obj.__doc__ or ""
            if not re.search(r"^\s*Examples?:\s*$", doc, re.MULTILINE) or ">>>" not in doc:
                without.append(f"{module.__name__}.{name}")
    assert not without, "docstrings without an Example section: " + ", ".join(sorted(set(without)))


# ------------------------------------------------------------------ figures
def _figures_module():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "figures" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_script(tmp_path):
    figures = _figures_module()
    written = figures.main(str(tmp_path))
    names = sorted(os.path.basename(path) for path in written)
    assert names == ["how_it_works_steps.png", "overview.png", "resolution.png"]
    for path in written:
        size = os.path.getsize(path)
        assert 0 < size < MAX_FIGURE_BYTES, (path, size)
        committed = DOCS / "figures" / os.path.basename(path)
        assert committed.is_file() and committed.stat().st_size < MAX_FIGURE_BYTES
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # What the figures claim: on the 16x16 map the parts are the red disc,
    # the green square and the blue disc, in that order (brightness).
    pixels, masks = figures.make_image()
    result = figures.group(pixels, pool=4)
    size = pixels.shape[0]
    maps, picks = result["maps"], result["picks"]
    h = maps.shape[0]
    cells = [m.reshape(h, size // h, h, size // h).mean(axis=(1, 3)) > 0.5 for m in masks]
    background = ~np.any(cells, axis=0)
    for k, (cell, pick) in enumerate(zip(cells, picks)):
        att = maps[..., k]
        np.testing.assert_allclose(att.sum(), 1.0, rtol=1e-5)
        assert cell[pick], f"part {k + 1} does not start on its object"
        # Per cell, the part weighs its object far more than the background
        # and the other objects.
        own = att[cell].mean()
        assert own > 5 * att[background].mean(), f"part {k + 1}: object vs background"
        for j, other in enumerate(cells):
            if j != k:
                assert own > 20 * att[other].mean(), f"part {k + 1} also covers object {j + 1}"
    # The score is damped: part k's object is (almost) gone from the next score.
    for k in range(len(picks) - 1):
        assert result["scores"][k + 1][picks[k]] < 0.05 * result["scores"][k][picks[k]]


# ------------------------------------------------- the griffe docstring fixes
def test_griffe_extension_rewrites_keras_style_docstrings():
    spec = importlib.util.spec_from_file_location("gkd", API / "griffe_keras_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (
        "Summary.\n\n"
        "Args:\n    model, images,\n    batch_size: as for f.\n    x: an int.\n\n"
        "Call arguments:\n    features: a map\n        over two lines.\n    training: unused.\n\n"
        "Example:\n\n>>> 1 + 1\n2\n\n>>> 3\n3\n\n"
        "Reference:\n    A paper."
    )
    fixed = module.indent_examples(module.bullet_call_arguments(module.join_grouped_args(doc)))
    assert "    model, images, batch_size: as for f.\n    x: an int." in fixed
    assert "    - features: a map\n          over two lines.\n    - training: unused." in fixed
    assert "Examples:\n    >>> 1 + 1\n    2\n\n    >>> 3\n    3\n\nReference:\n    A paper." in fixed
    # Already indented examples and other text stay as they are.
    plain = "Summary.\n\nReturns:\n    a, b,\n    c"
    assert module.indent_examples(module.join_grouped_args(plain)) == plain
