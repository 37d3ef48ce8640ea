"The FiftyOne App as a lab member sees it: `maskgen.browse` on 127.0.0.1, opened in Chromium, the grid and both mask overlays drawn; and `maskgen browse`."
import importlib.util, os, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np
import pytest
from conftest import ROOT, skip_without_fiftyone

pytestmark = pytest.mark.fiftyone
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
SCREENSHOT = ROOT / 'nbs' / 'images' / 'fiftyone_app.png'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5): return True
    except OSError: return False


def app_servers(port):
    "Processes serving the FiftyOne App on `port`."
    import psutil
    found = []
    for p in psutil.process_iter(['cmdline']):
        cmd = p.info['cmdline'] or []
        if '--port' in cmd and str(port) in cmd and any('main.py' in c for c in cmd): found.append(p)
    return found


@pytest.fixture(scope='module')
def lab_split(tmp_path_factory):
    "A validation split of grayscale 16-bit TIFF nuclei (shown through JPEG previews) and predictions shifted right by 12 px."
    from maskgen.synth import make_dataset
    from maskgen.data import read_mask
    from maskgen.io import save_mask
    root = tmp_path_factory.mktemp('lab')
    val = make_dataset(root / 'data', n_train=1, n_val=4, size=256, seed=1, kinds='nuclei', bit_depth=16, rgb=False) / 'val'
    for i, m in enumerate(sorted((val / 'masks').iterdir())):
        save_mask(np.roll(read_mask(m), 12 + 8 * i, axis=1), root / 'pred' / f'{m.stem}_mask.png')
    return val, root / 'pred'


def overlay_fractions(png_bytes):
    "Fractions of the pixels of a screenshot tinted by the ground truth (green) and by the prediction (magenta)."
    import io
    from PIL import Image
    a = np.asarray(Image.open(io.BytesIO(png_bytes)).convert('RGB')).astype(int)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    green = (g > r + 60) & (g > b + 60)
    magenta = (r > g + 60) & (b > g + 60)
    return green.mean(), magenta.mean()


@pytest.mark.browser
def test_app_shows_grid_and_both_overlays(fiftyone_db, lab_split, tmp_path):
    if not Path(CHROMIUM).exists(): pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    if importlib.util.find_spec('playwright') is None: pytest.skip("playwright is not installed: pip install playwright (never `playwright install`)")
    from playwright.sync_api import sync_playwright
    from maskgen.browse import browse, build_dataset
    val, pred = lab_split
    ds = build_dataset(val, pred_masks=pred, name='app-test', media_dir=tmp_path / 'media')
    port = free_port()
    session = browse(ds, port=port, address='127.0.0.1', remote=True, auto=False)
    try:
        assert session.url == f'http://127.0.0.1:{port}/'
        with urllib.request.urlopen(session.url, timeout=30) as r: assert r.status == 200
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={'width': 1280, 'height': 800})
                page.goto(session.url)
                page.wait_for_selector('[data-cy=looker] canvas[canvas-loaded=true]', timeout=90_000)
                dismiss = page.get_by_role('button', name='Dismiss')    # the "Explore Enterprise" popup, when shown
                try: dismiss.first.wait_for(timeout=3_000); dismiss.first.click()
                except Exception: pass
                assert page.locator('[data-cy=looker]').count() == 4
                assert page.get_by_text('worst_first').count() >= 1     # the App opened the saved view
                page.locator('[data-cy=looker]').first.click()
                modal = page.locator('[data-cy=modal-looker-container]')
                page.wait_for_selector('[data-cy=modal-looker-container] canvas[canvas-loaded=true]', timeout=60_000)
                deadline, green, magenta = time.monotonic() + 30, 0.0, 0.0
                while time.monotonic() < deadline:                      # masks load after the image
                    green, magenta = overlay_fractions(modal.screenshot())
                    if green > 0.002 and magenta > 0.002: break
                    time.sleep(0.5)
                shot = tmp_path / 'fiftyone_app.png'
                page.screenshot(path=str(shot))
            finally: browser.close()
        assert green > 0.002 and magenta > 0.002, f"overlays not drawn: green {green:.4f}, magenta {magenta:.4f} of the modal; see {shot}"
        if os.environ.get('MASKGEN_UPDATE_SCREENSHOT') == '1':
            from PIL import Image
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            Image.open(shot).convert('RGB').quantize(96).save(SCREENSHOT, optimize=True)
            assert SCREENSHOT.stat().st_size < 300_000, SCREENSHOT.stat().st_size
    finally:
        session.close()
    deadline = time.monotonic() + 20
    while (port_open(port) or app_servers(port)) and time.monotonic() < deadline: time.sleep(0.2)
    assert not port_open(port), f"the App still listens on port {port} after session.close()"
    assert not app_servers(port), f"App server processes left: {app_servers(port)}"


def test_browse_cli_serves_until_ctrl_c(fiftyone_db, lab_split, tmp_path):
    val, pred = lab_split
    port = free_port()
    jsonl = tmp_path / 'results.jsonl'
    proc = subprocess.Popen([sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())', 'browse',
                             '--images', str(val), '--pred', str(pred), '--port', str(port), '--remote', '--name', 'cli-test',
                             '--jsonl', str(jsonl)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None: break
            lines.append(line)
            if line.startswith('FiftyOne App:'): break
        out = ''.join(lines)
        assert f'FiftyOne App: http://127.0.0.1:{port}/' in out, out[-3000:]
        assert '4 images, 4 with Dice' in out, out[-3000:]
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=30) as r: assert r.status == 200
        assert len(jsonl.read_text().splitlines()) == 4
        proc.send_signal(signal.SIGINT)
        assert proc.wait(180) == 0   # closing the App and its server takes a while on a loaded 2-core machine
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()
    deadline = time.monotonic() + 20
    while port_open(port) and time.monotonic() < deadline: time.sleep(0.2)
    assert not port_open(port) and not app_servers(port)


def test_database_error_is_clear(lab_split, tmp_path):
    skip_without_fiftyone()
    val, pred = lab_split
    env = dict(os.environ, HOME=str(tmp_path), FIFTYONE_DO_NOT_TRACK='true', FIFTYONE_DATABASE_VALIDATION='false',
               FIFTYONE_DATABASE_URI=f'mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=1000')
    r = subprocess.run([sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())', 'browse',
                        '--images', str(val), '--pred', str(pred), '--remote'], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "FiftyOne's database (MongoDB) could not start" in r.stderr and 'FIFTYONE_DATABASE_URI=mongodb://' in r.stderr, r.stderr[-2000:]
