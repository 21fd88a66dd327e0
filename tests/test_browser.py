"""07's explorer in a real browser: JupyterLab on 127.0.0.1 (a temporary copy of notebooks/, the
environment of `make nbval`, the kernel of this interpreter), headless Chromium from the system's
packages (/usr/bin/chromium, Debian's `chromium`; $SLAMP_CHROMIUM names another) driven by
Playwright (no browser download). The test runs all of 07 from the Run menu, waits for the last
cell, then moves the explorer's slider, clicks its stream buttons and presses Play, and checks that
the figure changes each time by more than redrawing the same state changes it, and that the
browser's console shows no error and no widget warning.

Needs `apt-get install chromium` and the `dev` extra's playwright; .ci/run installs Chromium. In
CI (``$CI`` set) a missing browser or Playwright fails the test; elsewhere it is skipped."""
import base64
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "07_latents.ipynb"
CHROMIUM = Path(os.environ.get("SLAMP_CHROMIUM", "/usr/bin/chromium"))
# Chromium as root, without a GPU, and without calls to Google's services (refused here).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# What `make nbval` gives the notebooks' kernels.
NBVAL_ENVIRONMENT = {"SLAMP_SMOKE": "1", "MPLBACKEND": "Agg"}
RUN_ALL_TIMEOUT = 600  # s for the whole notebook; under nbval 07 takes about a minute on 2 cores
REDRAW_TIMEOUT = 60  # s for one redraw of the explorer's figure
# A healthy run's console holds JupyterLab's and jupytext's debug and log lines and one warning
# (07 names no kernel: "No exact match found for python3, using kernel python3 ..."). Any error or
# uncaught exception fails the test, and so does a warning about widgets, their models or comms.
WIDGET_TROUBLE = re.compile(r"widget|model|\bcomms?\b|could not (create|render|find)", re.I)


def require_browser():
    """Chromium and Playwright, or a failed (CI) or skipped (elsewhere) test saying what is missing."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run it", pytrace=False)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a copy of notebooks/; yields the notebook's URL. Its own
    config, data, runtime and settings folders (in tmp_path): one kernel, ``python3``, that is this
    interpreter; news, update checks and toasts off; a notebook without a kernel starts the default one."""
    require_browser()
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.py", ".*"))
    jupyter = tmp_path / "jupyter"
    write_json(jupyter / "path" / "kernels" / "python3" / "kernel.json",
               {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (slamp)", "language": "python"})
    settings = jupyter / "lab-settings"
    write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
               {"autoStartDefaultKernel": True})
    write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
               {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    environment = {**os.environ, **NBVAL_ENVIRONMENT,
                   "JUPYTER_PATH": str(jupyter / "path"), "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
                   "JUPYTER_DATA_DIR": str(jupyter / "data"), "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
                   "JUPYTERLAB_SETTINGS_DIR": str(settings),
                   "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces")}
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={tmp_path / 'notebooks'}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        env=environment, cwd=tmp_path / "notebooks", stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within 120 s:\n"
                            f"{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # shuts its kernels down too
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        try:  # a kernel left behind (the server killed): it is in the server's session
            os.killpg(server.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        log.close()


@pytest.fixture
def browser_page(lab):
    """A Chromium page, and the list its console messages and page errors go to; closed afterwards."""
    from playwright.sync_api import sync_playwright

    messages = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: messages.append((m.type, m.text)))
            page.on("pageerror", lambda error: messages.append(("pageerror", str(error))))
            yield page, messages
        finally:
            browser.close()


# The notebook's state, read from JupyterLab's own model (window.jupyterapp: --expose-app-in-browser).
NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = Array.from(panel.content.model.cells).filter(cell => cell.type === "code").map(cell => {
        const outputs = [];
        for (let i = 0; i < cell.outputs.length; i++) outputs.push(cell.outputs.get(i).toJSON());
        return {count: cell.executionCount, state: cell.executionState,
                errors: outputs.filter(o => o.output_type === "error").map(o => `${o.ename}: ${o.evalue}`),
                text: outputs.map(o => o.text || (o.data && o.data["text/plain"]) || "").join("")};
    });
    return {kernel: kernel ? kernel.status : null, cells};
}"""


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    """The first true value of ``condition()``, or a failed test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(interval)


def run_all(page) -> dict:
    """Run every cell from JupyterLab's Run menu; return the notebook's state once the kernel is
    idle and every code cell has run, in order, with this kernel (a new one: counts 1, 2, ...)."""
    state = wait_for(lambda: (s := page.evaluate(NOTEBOOK_STATE)) and s["kernel"] == "idle" and s,
                     120, "07 to open and its kernel to start")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    started = time.monotonic()

    def finished():
        state = page.evaluate(NOTEBOOK_STATE)
        errors = [f"cell {i + 1}: {e}" for i, cell in enumerate(state["cells"]) for e in cell["errors"]]
        if errors:
            pytest.fail("07 raised in the browser:\n" + "\n".join(errors), pytrace=False)
        counts = [cell["count"] for cell in state["cells"]]
        done = (state["kernel"] == "idle" and all(cell["state"] != "running" for cell in state["cells"])
                and counts == list(range(1, len(counts) + 1)))
        return done and state

    state = wait_for(finished, RUN_ALL_TIMEOUT, "every cell of 07 to run (Run > Run All Cells)", interval=1)
    print(f"07 ran in the browser in {time.monotonic() - started:.0f} s ({len(state['cells'])} code cells)")
    return state


def image_of(page, figure) -> tuple[str, np.ndarray]:
    """The explorer figure's PNG (its <img> data URL) and its pixels (H, W, 3)."""
    source = figure.get_attribute("src")
    assert source and source.startswith("data:image/png;base64,"), f"the explorer's figure is no PNG: {source!r:.80}"
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))
    return source, pixels


def changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that differ between two renderings (all of them when the sizes differ)."""
    if a.shape != b.shape:
        return max(a.shape[0] * a.shape[1], b.shape[0] * b.shape[1])
    return int((np.abs(a.astype(int) - b.astype(int)).max(-1) > 0).sum())


def widget_trouble(messages) -> list:
    """The console messages that fail the test: uncaught page errors, console errors, and warnings
    about widgets, their models or comms."""
    return [(kind, text) for kind, text in messages
            if kind in ("pageerror", "error") or (kind == "warning" and WIDGET_TROUBLE.search(text))]


def test_the_explorer_of_07_works_in_a_browser(lab, browser_page):
    page, messages = browser_page
    try:
        check_the_explorer(lab, page, messages)
    finally:
        print("browser console:", *messages, sep="\n  ")


def check_the_explorer(url, page, messages):
    page.goto(url)
    state = run_all(page)
    assert "smoke settings" in state["cells"][-1]["text"], state["cells"][-1]["text"]  # this run's last cell

    explorer = page.locator(".widget-vbox").filter(has=page.get_by_role("button", name="redraw z^p", exact=True))
    assert explorer.count() == 1, f"expected one explorer (a VBox with a 'redraw z^p' button), found {explorer.count()}"
    explorer.scroll_into_view_if_needed()
    assert page.get_by_text("Error displaying widget").count() == 0
    figure = explorer.locator(".widget-output img")
    readout = explorer.locator(".widget-readout")
    handle = explorer.locator(".widget-slider .noUi-handle")

    def kernel_idle():
        return page.evaluate(NOTEBOOK_STATE)["kernel"] == "idle"

    def redrawn(what, action, before):
        """Do ``action``, wait for the explorer's figure to be replaced, return the new one."""
        action()
        wait_for(lambda: figure.count() == 1 and figure.get_attribute("src") != before[0] and kernel_idle(),
                 REDRAW_TIMEOUT, f"the explorer's figure to change after {what}")
        return image_of(page, figure)

    shown = image_of(page, figure)
    pixels = shown[1].shape[0] * shown[1].shape[1]
    assert readout.inner_text() == "7", readout.inner_text()  # 07 leaves the explorer at future step 8
    handle.focus()
    step_8 = redrawn("moving the slider to step 8", lambda: handle.press("ArrowRight"), shown)
    assert readout.inner_text() == "8"
    step_7 = redrawn("moving the slider back to step 7", lambda: handle.press("ArrowLeft"), step_8)
    changes, current = {"slider 7 -> 8": changed_pixels(shown[1], step_8[1])}, step_7
    for label in ("z^p", "z^f", "all"):
        button = explorer.get_by_role("button", name=f"redraw {label}", exact=True)
        after = redrawn(f"clicking 'redraw {label}'", button.click, current)
        changes[f"redraw {label}"], current = changed_pixels(current[1], after[1]), after
    explorer.locator(".widget-play button").first.click()  # Play: steps 8 .. 19, one redraw each
    wait_for(lambda: readout.inner_text() == "19" and kernel_idle() and figure.count() == 1, REDRAW_TIMEOUT,
             "Play to reach the last future step (19)")
    changes["Play to step 19"] = changed_pixels(current[1], image_of(page, figure)[1])

    # The noise floor: the same state (step 7, same draws) drawn again. matplotlib draws it the
    # same, pixel for pixel (measured: 0 of 358,150). A change must reach 2% of the figure: what
    # the panels and bar charts do (measured: 10-12%), more than a title's text alone.
    floor = changed_pixels(shown[1], step_7[1])
    print(f"figure {shown[1].shape[1]} x {shown[1].shape[0]} px; pixels changed: same state drawn again {floor}; "
          + ", ".join(f"{what} {n}" for what, n in changes.items()))
    assert floor <= 0.001 * pixels, f"the same state drew differently: {floor} of {pixels} pixels"
    small = {what: n for what, n in changes.items() if n < floor + 0.02 * pixels}
    assert not small, f"the figure changed by less than 2% of its {pixels} pixels: {small}"
    assert not widget_trouble(messages), widget_trouble(messages)
