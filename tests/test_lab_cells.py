"""The lab's documented notebook cells, verbatim, against a served copy of the lab's real checkpoint.

The cells are copied character for character from the lab's README (`Katsurado/bernlab_maskgen`). They call
`download_weights()` with its default, the lab's GitHub release URL. We never reach the internet: the subprocess that
runs a cell first installs a urllib opener that answers exactly that URL from a server on 127.0.0.1 serving
`../shared/fixtures/lab_checkpoint/lab_small.pth`, so download, `.part` file, checksum and cache run for real.
"""
import hashlib, json, os, re, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pytest
from conftest import ROOT

FIXTURES = ROOT.parent / 'shared' / 'fixtures' / 'lab_checkpoint'
LAB_URL = "https://github.com/Katsurado/bernlab_maskgen/releases/latest/download/best.pth"

QUICK_START = '''\
from maskgen import MaskGenerator, download_weights

gen = MaskGenerator(download_weights())
mask = gen.generate("image.png", strategy={"name": "tile", "tile_size": 512, "overlap": 64})
mask.save("mask.png")
'''

LAB_INTEGRATION = '''\
from maskgen import MaskGenerator, download_weights

gen = MaskGenerator(download_weights())
gen.generate_and_save(
    "path/to/first_image.png",
    "path/to/masks/mask.png",
    strategy={"name": "tile", "tile_size": 512, "overlap": 64},
)
'''

# Runs before the cell, in the same process: serve the fixture and route the lab's release URL to it.
SERVE_FIXTURE = '''\
import functools, http.server, threading, urllib.request
_srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(
    http.server.SimpleHTTPRequestHandler, directory={folder!r}))
_srv.RequestHandlerClass.log_message = lambda *a: None
threading.Thread(target=_srv.serve_forever, daemon=True).start()
_REQUESTS = []
class _LabRelease(urllib.request.BaseHandler):
    handler_order = 100   # before the real HTTPS handler
    def https_open(self, req):
        if req.full_url != {url!r}: raise AssertionError('unexpected request to ' + req.full_url)
        _REQUESTS.append(req.full_url)
        return urllib.request.build_opener().open(f"http://127.0.0.1:{{_srv.server_address[1]}}/lab_small.pth", timeout=30)
urllib.request.install_opener(urllib.request.build_opener(_LabRelease()))
'''

REPORT = '''
import json, sys
print(json.dumps({"requests": _REQUESTS}))
'''


def run_cell(cell:str, cwd:Path, cache:Path, extra:str=''):
    "Run `cell` unchanged in a fresh interpreter in `cwd`, with the release served locally; returns the JSON it reports."
    code = SERVE_FIXTURE.format(folder=str(FIXTURES), url=LAB_URL) + cell + extra + REPORT
    env = {**os.environ, 'MASKGEN_CACHE': str(cache), 'HOME': str(cwd)}
    r = subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def real_image():
    "A real 520x696 BBBC039 nuclei image as an 8-bit PNG, larger than one 512 tile."
    import tifffile
    src = sorted((ROOT.parent / 'shared' / 'datasets' / 'real' / 'bbbc039' / 'images').glob('*.tif'))[0]
    img = tifffile.imread(src).astype(np.float32)
    lo, hi = np.percentile(img, (0.1, 99.9))
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def expected_mask(image:np.ndarray)->np.ndarray:
    "The mask maskgen makes of `image` with the fixture loaded from disk directly."
    from maskgen.generator import MaskGenerator
    gen = MaskGenerator(FIXTURES / 'lab_small.pth')
    return np.asarray(gen.generate(image, strategy={"name": "tile", "tile_size": 512, "overlap": 64}))


def cached_file(cache:Path)->Path:
    files = [p for p in cache.rglob('best.pth')]
    assert len(files) == 1, files
    return files[0]


def test_quick_start_cell(tmp_path, real_image):
    from PIL import Image
    Image.fromarray(real_image).save(tmp_path / 'image.png')
    out = run_cell(QUICK_START, tmp_path, tmp_path / 'cache')
    assert out['requests'] == [LAB_URL]
    sha = json.loads((FIXTURES / 'provenance.json').read_text())['lab_small.pth']['sha256']
    assert hashlib.sha256(cached_file(tmp_path / 'cache').read_bytes()).hexdigest() == sha
    mask = np.asarray(Image.open(tmp_path / 'mask.png'))
    assert mask.shape == real_image.shape and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask, expected_mask(real_image))
    # a second run uses the cache: no request
    out = run_cell(QUICK_START, tmp_path, tmp_path / 'cache')
    assert out['requests'] == []


def test_lab_integration_cell_returns_the_mask(tmp_path, real_image):
    from PIL import Image
    (tmp_path / 'path' / 'to').mkdir(parents=True)
    Image.fromarray(real_image).convert('RGB').save(tmp_path / 'path' / 'to' / 'first_image.png')
    # the cell is an expression statement; we also keep its value to check that it is the mask, as in the lab's code
    cell = LAB_INTEGRATION.replace('gen.generate_and_save(', 'returned = gen.generate_and_save(', 1)
    extra = textwrap.dedent('''
        import numpy as np
        from PIL import Image
        assert isinstance(returned, Image.Image), type(returned)
        assert returned.mode == 'L'
        assert np.array_equal(np.asarray(returned), np.asarray(Image.open("path/to/masks/mask.png")))
        ''')
    out = run_cell(cell, tmp_path, tmp_path / 'cache', extra)
    assert out['requests'] == [LAB_URL]
    mask = np.asarray(Image.open(tmp_path / 'path' / 'to' / 'masks' / 'mask.png'))
    np.testing.assert_array_equal(mask, expected_mask(real_image))
    run_cell(LAB_INTEGRATION, tmp_path, tmp_path / 'cache')   # and the cell exactly as the lab wrote it


def test_maskgenerator_gives_the_lab_logits():
    "MaskGenerator reads the config from the weights and reproduces the lab code's logits on its input image."
    import torch
    from maskgen.generator import MaskGenerator
    expected = {True: np.load(FIXTURES / 'expected_ema_logits.npy'), False: np.load(FIXTURES / 'expected_raw_logits.npy')}
    for use_ema in (True, False):
        gen = MaskGenerator(FIXTURES / 'lab_small.pth', use_ema=use_ema, precision='fp32')
        prob = gen.generate(str(FIXTURES / 'input.png'), return_prob=True)
        logits = torch.logit(torch.from_numpy(prob).double()).numpy()
        assert np.abs(logits - expected[use_ema]).max() < 1e-4, (use_ema, np.abs(logits - expected[use_ema]).max())


def code_blocks(text:str)->list[str]:
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)]


def notebook_code(path:Path)->str:
    "The sources of a notebook's code and markdown cells, one after another."
    nb = json.loads(path.read_text())
    return '\n'.join(''.join(c['source']) + '\n' for c in nb['cells'])


def test_readme_and_tutorials_show_the_lab_cells():
    readme = (ROOT / 'README.md').read_text()
    blocks = code_blocks(readme)
    assert QUICK_START in blocks, "README must show the lab's quick start cell verbatim"
    assert LAB_INTEGRATION in blocks, "README must show the lab's lab-integration cell verbatim"
    assert QUICK_START.strip() in notebook_code(ROOT / 'nbs' / 'tutorials' / 'quick_start.ipynb')
    assert LAB_INTEGRATION.strip() in notebook_code(ROOT / 'nbs' / 'tutorials' / 'lab_integration.ipynb')


def test_quick_start_cell_on_an_image_smaller_than_a_tile(tmp_path):
    "The lab's tiling covers any image with at least one (truncated) tile, so its cell works on small images too."
    import shutil
    from PIL import Image
    shutil.copy(FIXTURES / 'input.png', tmp_path / 'image.png')   # 96x128, smaller than a 512 tile
    run_cell(QUICK_START, tmp_path, tmp_path / 'cache')
    mask = np.asarray(Image.open(tmp_path / 'mask.png'))
    image = np.asarray(Image.open(tmp_path / 'image.png').convert('RGB'))
    assert mask.shape == image.shape[:2]
    from maskgen.generator import MaskGenerator
    whole = np.asarray(MaskGenerator(FIXTURES / 'lab_small.pth').generate(image, strategy={"name": "whole"}))
    np.testing.assert_array_equal(mask, whole)   # one tile covering the whole image is the whole image
