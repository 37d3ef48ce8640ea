"""The in-browser page (web/, built into the docs at `in_browser/`) in a real Chromium: it masks images with ONNX Runtime
Web as the Python package does (a 1024x1024 synthetic image through the tiles and blend window; small 16-bit TIFF and
PNG, float TIFF with NaN, planar RGB TIFF, JPEG, EXIF-turned, stacked and thin images whole), downloads the mask as a PNG,
moves the threshold, reports bad and too large files on the page without hanging, cancels a run, loads nothing from
outside its own server, becomes cross-origin isolated through its service worker where the server sends no such headers
(GitHub Pages), and runs on WebGPU where Chromium offers an adapter (its software one, SwiftShader, here).

Needs Debian's Chromium at /usr/bin/chromium, `pip install -e '.[dev]'` (playwright) and Node.js with npm (web/build.py
installs the page's npm packages from web/package-lock.json). With MASKGEN_DOCS_DIR=_docs it tests the page of a site
already built by `python tools/build_docs.py`; otherwise it builds the page under the test's tmp folder.
Run it with `pytest -m browser tests/test_in_browser.py` (add -s to see the timings).
"""
import base64, functools, os, shutil, subprocess, sys, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import numpy as np
import pytest
from conftest import ROOT

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
FINISHED = 'body[data-run="{run}"][data-state=done], body[data-run="{run}"][data-state=error], body[data-run="{run}"][data-state=failed]'

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def site(tmp_path_factory)->Path:
    "The site folder whose `in_browser/` holds the page: MASKGEN_DOCS_DIR if set, else a fresh build of web/."
    if not CHROMIUM.exists(): pytest.skip("Debian's Chromium is not at /usr/bin/chromium: apt-get install chromium")
    pytest.importorskip('playwright.sync_api', reason="playwright is not installed: pip install -e '.[dev]'")
    if os.environ.get('MASKGEN_DOCS_DIR'):
        site = (ROOT / os.environ['MASKGEN_DOCS_DIR']).resolve()
        if not (site / 'in_browser' / 'model.json').exists() and not shutil.which('npm') and os.environ.get('CI') != 'true':
            pytest.skip(f"{site} was built without Node.js/npm, so it has no in-browser page (apt-get install nodejs npm)")
        assert (site / 'in_browser' / 'model.json').exists(), f"{site} has no in_browser/ page: run python tools/build_docs.py"
        return site
    if not shutil.which('npm') and not (ROOT / 'web' / 'node_modules').exists():
        pytest.skip("Node.js/npm is not installed: the page cannot be built (apt-get install nodejs npm)")
    site = tmp_path_factory.mktemp('site')
    r = subprocess.run([sys.executable, str(ROOT / 'web' / 'build.py'), '--dest', str(site / 'in_browser')], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"web/build.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return site


class Handler(SimpleHTTPRequestHandler):
    "Static files; cross-origin isolated (COOP/COEP headers) unless `isolate` is False, like GitHub Pages."
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, '.mjs': 'text/javascript', '.wasm': 'application/wasm'}
    isolate, served = True, None
    def end_headers(self):
        if self.isolate:
            self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
            self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
        super().end_headers()
    def do_GET(self):
        self.served.append(self.path)
        super().do_GET()
    def log_message(self, *args): pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError): super().handle_error(request, client_address)   # Chromium hangs up early


@pytest.fixture(scope='module')
def playwright(site):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw: yield pw


@pytest.fixture(scope='module')
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try: yield b
    finally: b.close()


class Session:
    "The page open in a fresh browser context, served from `site` on 127.0.0.1; records every request that leaves the server."
    def __init__(self, site:Path, browser, isolate:bool=True):
        served = []
        handler = type('H', (Handler,), {'isolate': isolate, 'served': served})
        self.server = Server(('127.0.0.1', 0), functools.partial(handler, directory=str(site)))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)
        self.thread.start()
        self.base, self.served, self.requests, self.external = f'http://127.0.0.1:{self.server.server_address[1]}/', served, [], []
        self.context = browser.new_context(viewport={'width': 1280, 'height': 900}, accept_downloads=True)
        def only_local(route):   # everything comes from the page's own server: record and refuse anything else
            url = route.request.url
            if url.startswith((self.base, 'data:', 'blob:')): route.continue_()
            else: self.external.append(url); route.abort()
        self.context.route('**/*', only_local)
        self.context.on('request', lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.errors = []
        self.page.on('pageerror', lambda e: self.errors.append(str(e)))
        self.runs = 0

    def open(self, timeout=90_000):
        self.page.goto(self.base + 'in_browser/', wait_until='load')
        self.page.wait_for_selector('body[data-state=ready], body[data-state=failed]', state='attached', timeout=timeout)
        state = self.page.evaluate('() => [window.maskgen.state, window.maskgen.message]')
        assert state[0] == 'ready', f"the page did not load its model: {state[1]}"
        return self

    def mask(self, path:Path, timeout=300_000)->dict:
        "Give the page the image file at `path` and wait until it shows the mask or a message; returns its state."
        self.runs += 1
        t0 = time.perf_counter()
        self.page.set_input_files('#file', str(path))
        self.page.wait_for_selector(FINISHED.format(run=self.runs), state='attached', timeout=timeout)
        out = self.page.evaluate('() => ({state: maskgen.state, message: maskgen.message, result: maskgen.result, '
                                 'info: maskgen.info, backend: maskgen.backend, settings: maskgen.settings})')
        out['wall'] = time.perf_counter() - t0
        if out['state'] == 'error': assert self.page.locator('#message').is_visible() and self.page.locator('#message').inner_text() == out['message']
        return out

    def probability(self)->np.ndarray:
        res = self.page.evaluate('() => maskgen.result')
        raw = base64.b64decode(self.page.evaluate('() => maskgen.probabilityBase64()'))
        return np.frombuffer(raw, np.float32).reshape(res['height'], res['width'])

    def download_mask(self, tmp:Path)->np.ndarray:
        from PIL import Image
        with self.page.expect_download() as dl: self.page.click('#download')
        path = tmp / dl.value.suggested_filename
        dl.value.save_as(path)
        with Image.open(path) as im:
            assert im.format == 'PNG' and im.mode == 'L', (im.format, im.mode)
            return np.asarray(im)

    def close(self):
        self.context.close()
        self.server.shutdown(); self.server.server_close(); self.thread.join(timeout=10)
        assert not self.errors, f"errors on the page: {self.errors}"


@pytest.fixture
def session(site, browser):
    s = Session(site, browser).open()
    yield s
    s.close()
    assert not s.external, f"the page asked for resources outside its server: {sorted(set(s.external))[:10]}"


def dice(a:np.ndarray, b:np.ndarray)->float:
    a, b = a > 0, b > 0
    return 1.0 if not (a.any() or b.any()) else 2 * (a & b).sum() / (a.sum() + b.sum())


def python_reference(path:Path):
    "MaskGenerator()'s probability map and mask (threshold 'auto', the calibrated one) of the image at `path`, and the seconds."
    from maskgen import MaskGenerator
    gen = MaskGenerator()
    t0 = time.perf_counter()
    prob = gen.generate(path, return_prob=True)
    seconds = time.perf_counter() - t0
    mask = np.asarray(gen.generate(path, threshold='auto'))
    return prob, mask, seconds, gen.threshold


def test_page_masks_1024_like_python(session, tmp_path):
    from PIL import Image
    from maskgen.synth import synth_image
    img, _ = synth_image('nuclei', 1024, seed=0)
    path = tmp_path / 'nuclei.png'
    Image.fromarray(img).save(path)
    out = session.mask(path)
    assert out['state'] == 'done', out['message']
    settings, res = out['settings'], out['result']
    assert out['info']['strategy'] == {'name': 'tile', 'tile_size': 512, 'overlap': 192, 'window': 'hann'}
    assert out['info']['tiles'] == 9 and (res['width'], res['height']) == (1024, 1024)
    prob = session.probability()
    ref_prob, ref_mask, py_seconds, threshold = python_reference(path)
    assert settings['threshold'] == threshold and res['threshold'] == threshold   # the slider starts at the calibrated one
    d = dice(prob > np.float32(threshold), ref_mask)
    err, worst = np.abs(prob - ref_prob).mean(), np.abs(prob - ref_prob).max()
    assert d >= 0.995 and err <= 0.01, f"page vs Python: Dice {d:.5f}, mean |Δprob| {err:.5f}"
    assert worst <= 1e-3, f"page vs Python: max |Δprob| {worst:.2e}: float32 arithmetic gives ~1e-5, so the port differs somewhere"

    # what the page shows: the backend, the progress over tiles, the time
    page = session.page
    assert page.locator('#backend').inner_text().startswith('Runs on WebAssembly'), page.locator('#backend').inner_text()
    assert page.evaluate("() => [document.getElementById('progress').value, document.getElementById('progress').max]") == [9, 9]
    status = page.locator('#status').inner_text()
    assert f"Masked in {res['seconds']['total']:.1f} s" in status, status
    assert page.locator('#image').bounding_box()['width'] > 100 and page.locator('#overlay').is_visible()

    # the downloaded mask is the page's probability over the threshold, and Python's mask
    mask = session.download_mask(tmp_path)
    np.testing.assert_array_equal(mask, np.where(prob > np.float32(threshold), 255, 0))
    assert dice(mask, ref_mask) >= 0.995

    # the threshold slider changes the mask without running the model again
    higher = 0.7 if threshold < 0.7 else 0.9   # above the calibrated threshold: a smaller mask
    page.fill('#threshold', str(higher))
    assert page.locator('#threshold-value').inner_text() == f'{higher:.2f}'
    mask_higher = session.download_mask(tmp_path)
    np.testing.assert_array_equal(mask_higher, np.where(prob > np.float32(higher), 255, 0))
    assert mask_higher.sum() < mask.sum()

    # nothing came from outside the server; the monitor saw the worker's own fetches (model, WebAssembly)
    names = {u.rsplit('/', 1)[-1] for u in session.requests}
    assert {'model.onnx', 'model.json', 'worker.js', 'ort-wasm-simd-threaded.wasm'} <= names, names
    assert {'/in_browser/model.onnx', '/in_browser/ort/ort-wasm-simd-threaded.wasm'} <= set(session.served)
    print(f"\n1024x1024, 9 tiles: headless Chromium {res['seconds']['model']:.1f} s model, {res['seconds']['total']:.1f} s in all "
          f"on {out['backend']['label']}; Python MaskGenerator {py_seconds:.1f} s (Dice {d:.5f}, mean |Δprob| {err:.2e}, max {worst:.2e})")


def small_images(folder:Path)->dict:
    "Small images of the formats the page reads, each masked whole: {file name: path}."
    import imagecodecs, tifffile
    from PIL import Image
    from maskgen.synth import synth_image
    out = {}
    img16, _ = synth_image('nuclei', (200, 333), seed=3, bit_depth=16)
    out['nuclei16.tif'] = folder / 'nuclei16.tif'; tifffile.imwrite(out['nuclei16.tif'], img16, compression='zlib')
    out['nuclei16.png'] = folder / 'nuclei16.png'; Image.fromarray(img16[:96, :130]).save(out['nuclei16.png'])
    out['float.tif'] = folder / 'float.tif'; tifffile.imwrite(out['float.tif'], img16[:120, :150].astype(np.float32) / 7)
    rgb16 = np.stack([img16[:100, :140], img16[50:150, 100:240], img16[100:200, :140]])
    out['rgb16_planar.tif'] = folder / 'rgb16_planar.tif'
    tifffile.imwrite(out['rgb16_planar.tif'], rgb16, photometric='rgb', planarconfig='separate')
    he, _ = synth_image('he', (160, 240), seed=1, jpeg=False)
    out['he.jpg'] = folder / 'he.jpg'; Image.fromarray(he).save(out['he.jpg'], quality=92)
    out['rgba16.png'] = folder / 'rgba16.png'   # 16-bit RGB with alpha: read at full depth, alpha dropped
    alpha = np.full((80, 110, 1), 40000, np.uint16)
    (folder / 'rgba16.png').write_bytes(imagecodecs.png_encode(np.ascontiguousarray(np.concatenate([rgb16[:, :80, :110].transpose(1, 2, 0), alpha], -1))))
    nan = img16[:120, :150].astype(np.float32)
    nan[10:20, 30:60] = np.nan
    out['nan.tif'] = folder / 'nan.tif'; tifffile.imwrite(out['nan.tif'], nan)
    exif = Image.Exif(); exif[0x0112] = 6   # EXIF orientation: turn 90° clockwise for display (and for maskgen.io)
    out['turned.jpg'] = folder / 'turned.jpg'; Image.fromarray(he[:, :200]).save(out['turned.jpg'], quality=92, exif=exif)
    exif[0x0112] = 8
    out['turned.png'] = folder / 'turned.png'; Image.fromarray(img16[:90, :140] >> 4).convert('L').save(out['turned.png'], exif=exif)
    gray, _ = synth_image('nuclei', (150, 170), seed=4)
    out['stack3.tif'] = folder / 'stack3.tif'; tifffile.imwrite(out['stack3.tif'], np.stack([gray, gray[::-1], gray[:, ::-1]]), photometric='minisblack')
    out['thin.png'] = folder / 'thin.png'; Image.fromarray(gray[:10, :70]).save(out['thin.png'])   # padded by replication
    return out


def test_page_tiles_off_the_grid_like_python(session, tmp_path):
    "An image whose sides are not multiples of 32: the page's last tiles read the padding past its edges, as `read_tile` does."
    from PIL import Image
    from maskgen.synth import synth_image
    img, _ = synth_image('nuclei', (600, 700), seed=1)
    path = tmp_path / 'off_grid.png'
    Image.fromarray(img).save(path)
    out = session.mask(path)
    assert out['state'] == 'done', out['message']
    assert out['info']['strategy']['name'] == 'tile' and out['info']['tiles'] == tile_grid_tiles(600, 700)
    prob = session.probability()
    ref_prob, ref_mask, _, threshold = python_reference(path)
    worst = np.abs(prob - ref_prob).max()
    assert dice(prob > np.float32(threshold), ref_mask) >= 0.995 and worst <= 1e-3, f"page vs Python: max |Δprob| {worst:.2e}"


def tile_grid_tiles(H:int, W:int)->int:
    "Tiles the Python package runs on an H×W image at the default strategy."
    from maskgen.engine import tile_grid
    from maskgen.generator import parse_strategy
    s = parse_strategy(None, (H, W))
    return tile_grid(H, W, s['tile_size'], s['overlap'], s['window']).n_tiles


@pytest.mark.filterwarnings('ignore:.*not a number')
def test_page_reads_formats_like_python(session, tmp_path):
    import tifffile
    images = small_images(tmp_path)
    assert tifffile.imread(images['stack3.tif']).shape == (3, 150, 170)   # Python reads it as RGB
    for name, path in images.items():
        out = session.mask(path, timeout=120_000)
        assert out['state'] == 'done', f"{name}: {out['message']}"
        assert out['info']['strategy'] == {'name': 'whole'}, name
        prob = session.probability()
        ref_prob, ref_mask, _, threshold = python_reference(path)
        assert prob.shape == ref_prob.shape, name
        d, err, worst = dice(prob > np.float32(threshold), ref_mask), np.abs(prob - ref_prob).mean(), np.abs(prob - ref_prob).max()
        assert d >= 0.995 and err <= 0.01 and worst <= 1e-3, \
            f"{name} ({out['info']['description']}): Dice {d:.5f}, mean |Δprob| {err:.5f}, max {worst:.2e}"
        if name == 'nan.tif': assert '300 pixels not a number' in out['info']['description'], out['info']['description']


def test_page_ports_the_tiling_rules(session):
    "tile_starts, tile_grid, blend_profile, the default strategy and intensity_range of the page's core against the Python package's."
    from maskgen.engine import tile_starts, blend_profile, tile_grid
    from maskgen.generator import parse_strategy
    from maskgen.io import intensity_range
    page = session.page
    for length, tile, overlap in [(512, 512, 192), (1024, 512, 192), (1500, 512, 192), (700, 256, 64), (97, 32, 0)]:
        assert page.evaluate(f'() => maskgen.core.tileStarts({length}, {tile}, {overlap})') == tile_starts(length, tile, overlap)
    for length, tile, overlap in [(1022, 480, 192), (1024, 512, 192), (1500, 512, 100), (700, 256, 64), (97, 64, 0), (500, 512, 192)]:
        assert page.evaluate(f'() => maskgen.core.tileStarts({length}, {tile}, {overlap}, 32)') == tile_starts(length, tile, overlap, 32)
    for H, W, tile, overlap in [(1022, 1024, 512, 192), (2048, 1500, 512, 64), (700, 1300, 256, 96), (100, 100, 32, 8), (520, 696, 512, 192)]:
        g = tile_grid(H, W, tile, overlap)
        got = page.evaluate(f'() => maskgen.core.tileGrid({H}, {W}, {tile}, {overlap})')
        assert (got['TH'], got['TW'], got['ys'], got['xs'], got['height'], got['width']) == (g.th, g.tw, g.ys, g.xs, len(g.sum_y), len(g.sum_x)), (H, W)
    for window in ('hann', 'linear', 'gaussian'):
        for start, end in [(True, True), (False, True), (True, False)]:
            got = page.evaluate(f'() => Array.from(maskgen.core.blendProfile(512, 192, "{window}", {str(start).lower()}, {str(end).lower()}))')
            np.testing.assert_array_equal(np.float32(got), blend_profile(512, 192, window, start, end))
    for shape in [(512, 512), (513, 512), (511, 2000), (600, 800), (100, 100), (1024, 1024)]:
        name = page.evaluate(f'() => maskgen.core.defaultStrategy({shape[0]}, {shape[1]}, maskgen.settings).name')
        assert name == parse_strategy(None, shape)['name'], shape
    rng = np.random.default_rng(0)
    for dtype, kind, channels in [(np.uint16, 'uint16', 1), (np.uint16, 'uint16', 3), (np.float32, 'float32', 1), (np.uint8, 'uint8', 3)]:
        arr = (rng.gamma(2, 300, (37, 53, channels)) + rng.integers(0, 3)).astype(dtype)
        js = (f'() => maskgen.core.intensityRange({{width: 53, height: 37, channels: {channels}, kind: "{kind}", '
              f'data: {"Uint16Array" if kind == "uint16" else ("Float32Array" if kind == "float32" else "Uint8Array")}.from({arr.ravel().tolist()})}}, '
              '{...maskgen.settings, max_samples: 300})')
        expected = intensity_range(np.broadcast_to(arr, arr.shape[:2] + (3,)) if channels == 1 else arr, max_samples=300)
        np.testing.assert_allclose(page.evaluate(js), expected, rtol=1e-6)


def test_page_reports_bad_and_large_files(session, tmp_path):
    import tifffile
    from PIL import Image
    max_pixels = session.page.evaluate('() => maskgen.settings.max_pixels')
    limit = f'{max_pixels / 1e6:.1f} megapixels'
    (tmp_path / 'notes.png').write_text('these are my notes, not an image\n')
    (tmp_path / 'empty.tif').write_bytes(b'')
    img = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) % 251).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / 'good.png')
    (tmp_path / 'cut.png').write_bytes((tmp_path / 'good.png').read_bytes()[:120])
    tifffile.imwrite(tmp_path / 'stack.tif', np.zeros((5, 64, 80), np.uint16))
    tifffile.imwrite(tmp_path / 'rgba.tif', np.zeros((64, 80, 4), np.uint8), photometric='rgb', extrasamples=['unassalpha'])
    tifffile.imwrite(tmp_path / 'complex.tif', np.zeros((64, 80), np.complex64))
    Image.new('L', (8000, 6000)).save(tmp_path / 'huge.png')
    tifffile.imwrite(tmp_path / 'huge.tif', np.zeros((6000, 7000), np.uint8), compression='zlib')
    expected = {'notes.png': ['not a PNG, JPEG, TIFF or BMP image'], 'empty.tif': ['is empty'],
                'cut.png': ['not a complete PNG'], 'stack.tif': ['stack of 5 images', 'one 2-D image'],
                'rgba.tif': ['4 samples per pixel', '1 (gray) or 3 (RGB)'], 'complex.tif': ['cannot read'],
                'huge.png': ['8000×6000', '48.0 megapixels', limit], 'huge.tif': ['7000×6000', '42.0 megapixels', limit]}
    for name, parts in expected.items():
        out = session.mask(tmp_path / name, timeout=60_000)   # a message within a minute: never a hang
        assert out['state'] == 'error', f"{name}: {out['state']}"
        missing = [p for p in parts if p not in out['message']]
        assert not missing, f"{name}: the message {out['message']!r} does not say {missing}"
        assert name in out['message']
    out = session.mask(tmp_path / 'good.png', timeout=120_000)   # and the page still works
    assert out['state'] == 'done', out['message']
    assert not session.page.locator('#message').is_visible()

    # a long run can be cancelled: the page drops the worker, loads the model again and takes the next image
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 1024), dtype=np.uint8)).save(tmp_path / 'noise.png')
    session.runs += 1
    session.page.set_input_files('#file', str(tmp_path / 'noise.png'))
    session.page.wait_for_selector('body[data-state=running]', state='attached', timeout=60_000)
    session.page.click('#cancel')
    session.page.wait_for_selector('body[data-state=ready]', state='attached', timeout=60_000)
    assert session.page.locator('#message').inner_text() == 'Cancelled.'
    out = session.mask(tmp_path / 'good.png', timeout=120_000)
    assert out['state'] == 'done' and out['result']['width'] == 80, out['message']


def test_service_worker_isolates_the_page_without_server_headers(site, browser, tmp_path):
    "Served as GitHub Pages serves it (no COOP/COEP headers), the page's service worker makes it cross-origin isolated."
    from PIL import Image
    from maskgen.synth import synth_image
    Image.fromarray(synth_image('nuclei', (96, 128), seed=5)[0]).save(tmp_path / 'small.png')
    s = Session(site, browser, isolate=False)
    try:
        s.open()
        isolated, backend, cores = s.page.evaluate('() => [crossOriginIsolated, maskgen.backend, navigator.hardwareConcurrency]')
        assert isolated and backend['isolated'], backend
        assert backend['threads'] == max(1, min(cores, 8)), (backend, cores)
        assert '/in_browser/coi-serviceworker.min.js' in s.served
        out = s.mask(tmp_path / 'small.png', timeout=120_000)   # and the model runs with its threads under the service worker
        assert out['state'] == 'done', out['message']
        ref_prob = python_reference(tmp_path / 'small.png')[0]
        assert np.abs(s.probability() - ref_prob).max() <= 1e-3
    finally: s.close()
    assert not s.external, s.external


WEBGPU_ARGS = [a for a in CHROMIUM_ARGS if a != '--disable-gpu'] + [
    '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader']


def test_page_runs_on_webgpu_where_the_browser_has_it(site, playwright, tmp_path):
    "With a WebGPU adapter (here Chromium's software one, SwiftShader: slow, so a small image) the page runs on WebGPU, same masks."
    from PIL import Image
    from maskgen.synth import synth_image
    img, _ = synth_image('nuclei', (64, 96), seed=2)
    path = tmp_path / 'small.png'
    Image.fromarray(img).save(path)
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=WEBGPU_ARGS, headless=True)
    s = Session(site, b)
    try:
        s.open(timeout=180_000)
        backend = s.page.evaluate('() => maskgen.backend')
        if backend['ep'] != 'webgpu': pytest.skip(f"this Chromium offers no WebGPU adapter, even SwiftShader's: {backend['note']}")
        assert s.page.locator('#backend').inner_text().startswith('Runs on WebGPU')
        out = s.mask(path, timeout=300_000)
        assert out['state'] == 'done' and out['result']['backend'] == 'webgpu', out['message']
        prob = s.probability()
    finally:
        s.close()
        b.close()
    assert not s.external, s.external
    ref_prob, ref_mask, _, threshold = python_reference(path)
    d, err = dice(prob > np.float32(threshold), ref_mask), np.abs(prob - ref_prob).mean()
    assert d >= 0.995 and err <= 0.01, f"WebGPU page vs Python: Dice {d:.5f}, mean |Δprob| {err:.5f}"
