"""The mask tool in a real JupyterLab and a real Chromium: run the notebook, move the threshold slider, paint a stroke on the
preview, save over an old mask, and check the file on disk.

Needs Debian's Chromium at /usr/bin/chromium (`apt-get install chromium`) and `pip install -e '.[dev]'` (jupyterlab,
notebook>=7, playwright, ipywidgets, ipyevents); Playwright's own browser downloads are not used. One server serves both
front-ends: JupyterLab 4 and Notebook 7. Run it with
`pytest -m browser tests/test_widget_browser.py`; with MASKGEN_UPDATE_SCREENSHOT=1 it also refreshes the docs' screenshot
nbs/images/mask_tool.png.
"""
import json, os, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np
import pytest
from conftest import ROOT

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
SIZE, PREVIEW, RADIUS = 1024, 512, 8     # image side, preview side (so 2 full-resolution px per preview px), brush radius

pytestmark = pytest.mark.browser


def brightness_model():
    "A 1x1 convolution that calls bright pixels foreground: a deterministic stand-in for a trained model."
    import torch
    from torch import nn
    net = nn.Conv2d(3, 1, 1)
    with torch.no_grad(): net.weight.fill_(10 / 3); net.bias.fill_(5.0)   # logit 10 * (mean intensity in [-1, 1] + 0.5)
    return net


NOTEBOOK_CELLS = [
    "import torch\nfrom torch import nn\nfrom maskgen.generator import MaskGenerator\nfrom maskgen.widget import MaskTool\n"
    "net = nn.Conv2d(3, 1, 1)\n"
    "with torch.no_grad(): net.weight.fill_(10 / 3); net.bias.fill_(5.0)\n"
    "gen = MaskGenerator.from_model(net, device='cpu', precision='fp32', threshold=0.5)",
    f"tool = MaskTool('experiment/images', gen, masks_dir='experiment/masks', preview_size={PREVIEW}, auto_run=True)\ntool",
]


def write_notebook(path:Path):
    cells = [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [], 'source': src}
             for i, src in enumerate(NOTEBOOK_CELLS)]
    nb = {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    path.write_text(json.dumps(nb))


def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def jupyter_env(tmp:Path)->dict:
    "Environment for a JupyterLab whose config, runtime, data and settings live in `tmp` (extensions still come from the venv)."
    env = dict(os.environ)
    dirs = {k: tmp / k.lower() for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR', 'JUPYTER_DATA_DIR', 'JUPYTERLAB_SETTINGS_DIR',
                                         'JUPYTERLAB_WORKSPACES_DIR', 'IPYTHONDIR')}
    for k, d in dirs.items(): d.mkdir(parents=True, exist_ok=True); env[k] = str(d)
    quiet = {'fetchNews': 'false', 'checkForUpdates': False}   # no news or update pop-up over the notebook
    (dirs['JUPYTER_CONFIG_DIR'] / 'labconfig').mkdir()
    (dirs['JUPYTER_CONFIG_DIR'] / 'labconfig' / 'default_setting_overrides.json').write_text(
        json.dumps({'@jupyterlab/apputils-extension:notification': quiet}))
    user = dirs['JUPYTERLAB_SETTINGS_DIR'] / '@jupyterlab' / 'apputils-extension'
    user.mkdir(parents=True)
    (user / 'notification.jupyterlab-settings').write_text(json.dumps(quiet))
    env.update(MPLBACKEND='Agg', PYTHONUNBUFFERED='1', JUPYTER_PLATFORM_DIRS='1')
    env.pop('JUPYTER_PATH', None)
    return env


def wait_for_server(url:str, proc, log:Path, timeout:float=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + 'api/status', timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def stop_jupyter(proc, url:str, runtime:Path):
    "Shut the server and its kernels down; then kill whatever of ours is left (the server's process group, kernels by pid)."
    try: urllib.request.urlopen(urllib.request.Request(url + 'api/shutdown', method='POST'), timeout=5)
    except OSError: pass
    try: proc.wait(timeout=15)
    except subprocess.TimeoutExpired: pass
    # kernels run in their own sessions: find them by the connection files in our private runtime folder
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: cmd = (d / 'cmdline').read_bytes()
        except OSError: continue
        if str(runtime).encode() in cmd and int(d.name) != os.getpid():
            try: os.kill(int(d.name), signal.SIGKILL)
            except OSError: pass
    try: os.killpg(proc.pid, signal.SIGKILL)
    except OSError: pass
    proc.wait(timeout=10)


def kernel_ready(url:str)->bool:
    "Whether a kernel of the server is idle with a front-end connected (keys pressed before that are lost)."
    try:
        with urllib.request.urlopen(url + 'api/kernels', timeout=2) as r: kernels = json.load(r)
    except OSError: return False
    return any(k['execution_state'] == 'idle' and k['connections'] > 0 for k in kernels)


def run_all_cells(page, url:str, n:int):
    "Run the notebook's `n` cells from the top, as Shift+Enter does cell by cell."
    t0 = time.time()
    while not kernel_ready(url):
        if time.time() - t0 > 60: raise TimeoutError("the notebook's kernel did not become ready in 60 s")
        time.sleep(0.3)
    page.locator('.jp-Notebook .jp-Cell .jp-InputPrompt').first.click()
    page.keyboard.press('Escape')
    for _ in range(n): page.keyboard.press('Shift+Enter')


def drag(page, box:dict, start:tuple, end:tuple, steps:int=24):
    "Press at `start`, move to `end` and release, in preview-image fractions of `box`."
    at = lambda f: (box['x'] + f[0] * box['width'], box['y'] + f[1] * box['height'])
    page.mouse.move(*at(start))
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(*at(tuple(a + (b - a) * k / steps for a, b in zip(start, end))))
        page.wait_for_timeout(15)
    page.mouse.up()


@pytest.fixture(scope='module')
def jupyter(tmp_path_factory):
    "A JupyterLab server on 127.0.0.1 (also serving Notebook 7 when it is installed) and a headless Chromium; stopped afterwards."
    if not CHROMIUM.exists(): pytest.skip("Debian's Chromium is not at /usr/bin/chromium: apt-get install chromium")
    pytest.importorskip('playwright.sync_api', reason="playwright is not installed: pip install -e '.[dev]'")
    for mod in ('jupyterlab', 'ipywidgets', 'ipyevents'): pytest.importorskip(mod, reason=f"{mod} is not installed: pip install -e '.[dev]'")
    from playwright.sync_api import sync_playwright
    tmp = tmp_path_factory.mktemp('jupyter')
    root, log = tmp / 'root', tmp / 'jupyter.log'
    root.mkdir()
    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--ServerApp.port_retries=0',
           "--IdentityProvider.token=", "--ServerApp.password=", '--ServerApp.disable_check_xsrf=True',
           f'--ServerApp.root_dir={root}', '--LabApp.news_url=', '--LabApp.extension_manager=readonly',
           '--ServerApp.terminals_enabled=False', '--allow-root']
    with open(log, 'wb') as logf:
        proc = subprocess.Popen(cmd, cwd=root, env=jupyter_env(tmp / 'config'), stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_server(url, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try: yield dict(url=url, root=root, browser=browser, log=log)
            finally: browser.close()
    finally:
        stop_jupyter(proc, url, tmp / 'config' / 'jupyter_runtime_dir')


FRONTENDS = {'jupyterlab': 'lab/tree/{}/tool.ipynb', 'notebook7': 'notebooks/{}/tool.ipynb'}


@pytest.mark.parametrize('frontend', list(FRONTENDS))
def test_mask_tool_in_browser(jupyter, frontend, tmp_path):
    if frontend == 'notebook7': pytest.importorskip('notebook', minversion='7', reason="Notebook 7 is not installed: pip install 'notebook>=7'")
    from PIL import Image
    from maskgen.generator import MaskGenerator
    from maskgen.io import save_mask
    from maskgen.synth import synth_image

    t_start = time.time()
    work = jupyter['root'] / frontend
    images, masks = work / 'experiment' / 'images', work / 'experiment' / 'masks'
    images.mkdir(parents=True)
    img, _ = synth_image('nuclei', size=SIZE, seed=1)
    Image.fromarray(img).save(images / 't0000.png')
    for t in (1, 2): shutil.copy(images / 't0000.png', images / f't000{t}.png')
    old = save_mask(np.full((SIZE, SIZE), 255, np.uint8), masks / 't0000_mask.png')   # a mask from an earlier session
    write_notebook(work / 'tool.ipynb')

    page = jupyter['browser'].new_page(viewport={'width': 1300, 'height': 1100})
    try:
        page.goto(jupyter['url'] + FRONTENDS[frontend].format(frontend), wait_until='domcontentloaded', timeout=60_000)
        page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=60_000)
        run_all_cells(page, jupyter['url'], len(NOTEBOOK_CELLS))
        tool = page.locator('.maskgen-tool')
        tool.wait_for(timeout=60_000)
        preview = page.locator('img.maskgen-preview')
        page.wait_for_function("() => { const i = document.querySelector('img.maskgen-preview'); "
                               "return i && i.complete && i.naturalWidth > 0 }", timeout=60_000)
        assert page.locator('.maskgen-error').inner_text().strip() == ''

        # move the threshold slider: drag its handle to about 80 % of the track
        handle = page.locator('.maskgen-threshold .noUi-handle')
        handle.scroll_into_view_if_needed()
        hb, tb = handle.bounding_box(), page.locator('.maskgen-threshold .noUi-target').bounding_box()
        page.mouse.move(hb['x'] + hb['width'] / 2, hb['y'] + hb['height'] / 2)
        page.mouse.down(); page.mouse.move(tb['x'] + 0.8 * tb['width'], hb['y'] + hb['height'] / 2, steps=8); page.mouse.up()
        readout = page.locator('.maskgen-threshold .widget-readout')
        page.wait_for_function("() => document.querySelector('.maskgen-threshold .widget-readout').textContent.trim() !== '0.50'")
        threshold = float(readout.inner_text())

        # paint a horizontal stroke across the preview
        page.locator('.maskgen-brush button', has_text='paint').click()
        preview.scroll_into_view_if_needed()
        box = preview.bounding_box()
        natural = preview.evaluate('i => [i.naturalWidth, i.naturalHeight]')
        assert natural == [PREVIEW, PREVIEW], natural
        drag(page, box, (0.25, 0.5), (0.75, 0.5))
        page.wait_for_timeout(500)

        # save: the old mask exists, so the tool asks first
        page.locator('.maskgen-save-button').click()
        page.locator('.maskgen-overwrite-button').click(timeout=30_000)
        page.wait_for_selector('.maskgen-status code.maskgen-saved', timeout=30_000)
        saved_text = page.locator('.maskgen-status').inner_text()
        assert 'experiment/masks/t0000_mask.png' in saved_text, saved_text
        assert page.locator('.maskgen-error').inner_text().strip() == ''
        shot = tmp_path / 'mask_tool.png'
        tool.screenshot(path=str(shot))
    except Exception:
        page.screenshot(path=str(tmp_path / 'failure.png'))
        print(f"screenshot of the failure: {tmp_path / 'failure.png'}; server log: {jupyter['log']}")
        raise
    finally:
        page.close()

    # the file on disk: the model's mask at the new threshold, plus the stroke, and nothing of the old all-foreground mask
    saved = np.array(Image.open(old))
    assert saved.dtype == np.uint8 and saved.shape == (SIZE, SIZE) and set(np.unique(saved)) <= {0, 255}
    assert 0.5 < threshold < 1.0, threshold
    prob = MaskGenerator.from_model(brightness_model(), device='cpu', precision='fp32').predict_probability(img, 'whole')
    model = prob > threshold
    assert (saved[model] == 255).all(), "pixels above the threshold were lost"
    painted = (saved > 0) & ~model
    ys, xs = np.nonzero(painted)
    assert len(ys) > 0, "the stroke is not in the saved mask"
    scale = SIZE / box['width']    # full-resolution px per screen px
    x0, x1, y = 0.25 * box['width'] * scale, 0.75 * box['width'] * scale, 0.5 * box['height'] * scale
    tol = RADIUS + 2 * scale
    assert xs.min() >= x0 - tol and xs.max() <= x1 + tol and abs(ys - y).max() <= tol, (xs.min(), xs.max(), ys.min(), ys.max(), x0, x1, y)
    row = int(round(y - 0.5))
    assert (saved[row, int(x0 + tol):int(x1 - tol)] == 255).all(), "the stroke has gaps"
    assert (saved == 0).mean() > 0.05, "the old all-foreground mask was not replaced"

    if frontend == 'jupyterlab' and os.environ.get('MASKGEN_UPDATE_SCREENSHOT') == '1':
        dst = ROOT / 'nbs' / 'images' / 'mask_tool.png'
        dst.parent.mkdir(exist_ok=True)
        Image.open(shot).convert('RGB').quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
        assert dst.stat().st_size < 300_000, dst.stat().st_size
    assert time.time() - t_start < 90, f"took {time.time() - t_start:.0f} s"
