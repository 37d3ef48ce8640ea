"""Build the docs page that masks an image in the browser (`web/src/`) into a folder of static files.

The page runs maskgen's embedded default model, exported to ONNX here with `maskgen.export.export_onnx` (fp32), with
ONNX Runtime Web from npm. Everything it loads is copied beside it: the bundled page and worker (esbuild bundles
`src/app.js`, `src/worker.js` and the image decoders fast-png and geotiff), ONNX Runtime Web's .mjs/.wasm files (`ort/`),
the model, and `model.json`: the model's calibrated threshold and the inference rules (tile size, overlap, blend
window, padding, percentiles), read from the Python package so the page and `MaskGenerator` cannot drift apart.
No file comes from a CDN and nothing is committed: the npm packages are installed from `web/package-lock.json`
(`npm ci`, run here when `web/node_modules` is missing or out of date).

    python web/build.py --dest /tmp/site/in_browser     # then serve /tmp/site and open /in_browser/
    python web/build.py --serve                         # build into a temporary folder and serve it on 127.0.0.1:8000

`tools/build_docs.py` calls `build` to put the page at `_docs/in_browser/`; the deploy workflow does the same after
Quarto's build. Needs Node.js >= 18 with npm, and the maskgen package (torch, onnx) for the export.
"""
from __future__ import annotations
import argparse, fcntl, functools, hashlib, inspect, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

WEB = Path(__file__).resolve().parent
ROOT = WEB.parent
ORT_FILES = ('ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm',         # WebAssembly
             'ort.webgpu.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm')  # WebGPU
STATIC_FILES = ('index.html', 'style.css')
MAX_PIXELS = 1 << 25            # the largest image the page takes, 33.6 megapixels (e.g. 5792 x 5792)
MAX_FILE_BYTES = 512 << 20      # the largest file it reads into memory
MAX_THREADS = 8                 # WebAssembly threads, when the page is cross-origin isolated
PAGE_DIR = 'in_browser'         # where tools/build_docs.py puts the page in the site


def _run(cmd:list, what:str, **kw):
    "Run `cmd` in web/, exiting with its output when it fails."
    try: r = subprocess.run(cmd, cwd=WEB, capture_output=True, text=True, **kw)
    except FileNotFoundError: sys.exit(f"{what} needs `{cmd[0]}`, which is not installed: install Node.js >= 18 with npm")
    if r.returncode: sys.exit(f"{what} failed ({' '.join(map(str, cmd))}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def npm_packages_current()->bool:
    "Whether web/node_modules holds every package web/package.json names, at the version it names."
    pkg = json.loads((WEB / 'package.json').read_text())
    for name, version in {**pkg.get('dependencies', {}), **pkg.get('devDependencies', {})}.items():
        installed = WEB / 'node_modules' / name / 'package.json'
        if not installed.exists() or json.loads(installed.read_text()).get('version') != version: return False
    return True


def ensure_npm_packages():
    "Install web/node_modules from web/package-lock.json (`npm ci`) unless it is already current; one process at a time."
    if npm_packages_current(): return
    with open(WEB / '.npm-ci.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if npm_packages_current(): return
        print("web/build.py: installing the page's npm packages (npm ci)", flush=True)
        _run(['npm', 'ci', '--no-audit', '--no-fund', '--loglevel=error'], "Installing the page's npm packages", timeout=600)
    if not npm_packages_current(): sys.exit("npm ci did not install the versions web/package.json names: check web/package-lock.json")


def page_settings(weights:Path)->dict:
    "What the page needs to know: the model's name and calibrated threshold, and maskgen's inference rules."
    from maskgen import __version__
    from maskgen.checkpoint import load_model
    from maskgen.generator import STRATEGIES, _pad_to
    from maskgen.io import intensity_range
    _, info = load_model(weights)
    meta, tile = info.get('metadata') or {}, STRATEGIES['tile']
    ir = inspect.signature(intensity_range).parameters
    return dict(model_file='model.onnx', name=meta.get('name', weights.stem), version=str(meta.get('version', '')),
                license=meta.get('license', ''), weights=info.get('weights'), config=info.get('config'),
                threshold=info['threshold'] if info['threshold'] is not None else 0.5,   # threshold='auto' in Python
                tile_size=tile['tile_size'], overlap=tile['overlap'], window=tile['window'],
                pad_multiple=inspect.signature(_pad_to).parameters['multiple'].default,
                percentiles=list(ir['percentiles'].default), max_samples=ir['max_samples'].default,
                max_pixels=MAX_PIXELS, max_file_bytes=MAX_FILE_BYTES, max_threads=MAX_THREADS,
                maskgen_version=__version__, precision='fp32')


def export_model(weights:Path, dest:Path)->Path:
    "The fp32 ONNX export of `weights` at `dest`, cached in web/.build-cache by the weights and the export code."
    import torch, maskgen
    from maskgen.export import export_onnx
    key = hashlib.sha256(weights.read_bytes())
    for f in ('export.py', 'model.py'): key.update((Path(maskgen.__file__).parent / f).read_bytes())
    key.update(torch.__version__.encode())
    cache = WEB / '.build-cache' / f'model-{key.hexdigest()[:16]}.onnx'
    if not cache.exists():
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_name(f'.{cache.name}.{os.getpid()}.tmp')
        try:
            export_onnx(weights, tmp)   # checks the file against PyTorch in ONNX Runtime
            os.replace(tmp, cache)
        finally: tmp.unlink(missing_ok=True)
    shutil.copy2(cache, dest)
    return dest


def build(dest:Path, weights:Path|None=None)->dict:
    "Write the page into the folder `dest` (created; must not exist or be empty); returns its settings."
    from maskgen.generator import DEFAULT_WEIGHTS
    t0 = time.time()
    weights = Path(weights or DEFAULT_WEIGHTS)
    if not weights.exists(): sys.exit(f"No model weights at {weights}: the page needs the embedded default model")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()): sys.exit(f"{dest} is not empty: pick a new folder for the page")
    ensure_npm_packages()
    dest.mkdir(parents=True, exist_ok=True)
    _run([str(WEB / 'node_modules' / '.bin' / 'esbuild'), 'src/app.js', 'src/worker.js', '--bundle', '--format=esm',
          '--minify', '--target=es2022', '--log-level=warning', f'--outdir={dest}'], "Bundling the page with esbuild", timeout=300)
    for f in STATIC_FILES: shutil.copy2(WEB / 'src' / f, dest / f)
    shutil.copy2(WEB / 'node_modules' / 'coi-serviceworker' / 'coi-serviceworker.min.js', dest / 'coi-serviceworker.min.js')
    ort_src = WEB / 'node_modules' / 'onnxruntime-web'
    (dest / 'ort').mkdir()
    for f in ORT_FILES: shutil.copy2(ort_src / 'dist' / f, dest / 'ort' / f)
    if (ort_src / 'LICENSE').exists(): shutil.copy2(ort_src / 'LICENSE', dest / 'ort' / 'LICENSE')
    export_model(weights, dest / 'model.onnx')
    settings = page_settings(weights)
    settings['onnxruntime_web'] = json.loads((ort_src / 'package.json').read_text())['version']
    (dest / 'model.json').write_text(json.dumps(settings, indent=1) + '\n')
    size = sum(f.stat().st_size for f in dest.rglob('*') if f.is_file())
    print(f"built the in-browser page into {dest} ({size / 1e6:.1f} MB) in {time.time() - t0:.1f} s")
    return settings


def isolated_handler(folder:Path):
    "An HTTP request handler for `folder` that sends the headers making pages cross-origin isolated (WebAssembly threads)."
    from http.server import SimpleHTTPRequestHandler
    class Handler(SimpleHTTPRequestHandler):
        extensions_map = {**SimpleHTTPRequestHandler.extensions_map, '.mjs': 'text/javascript', '.wasm': 'application/wasm'}
        def end_headers(self):
            self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
            self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
            super().end_headers()
        def log_message(self, *args): pass
    return functools.partial(Handler, directory=str(folder))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dest', type=Path, help="folder to write the page into (replaced atomically)")
    ap.add_argument('--weights', type=Path, default=None, help="model weights (default: maskgen's embedded default model)")
    ap.add_argument('--serve', action='store_true', help="then serve it on 127.0.0.1 (cross-origin isolated) until Ctrl-C")
    ap.add_argument('--port', type=int, default=8000, help="port for --serve (default 8000)")
    args = ap.parse_args(argv)
    if not args.dest and not args.serve: ap.error("pass --dest FOLDER, or --serve")
    sys.path.insert(0, str(ROOT))
    dest = (args.dest or Path(tempfile.mkdtemp(prefix='maskgen-page-')) / PAGE_DIR).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{dest.name}.', dir=dest.parent))
    try:
        build(tmp / 'page', args.weights)
        if dest.exists(): shutil.rmtree(dest)
        os.replace(tmp / 'page', dest)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    if args.serve:
        from http.server import ThreadingHTTPServer
        server = ThreadingHTTPServer(('127.0.0.1', args.port), isolated_handler(dest.parent))
        print(f"serving {dest.parent} at http://127.0.0.1:{args.port}/{dest.name}/ (Ctrl-C stops)")
        try: server.serve_forever()
        except KeyboardInterrupt: pass


if __name__ == '__main__': main()
