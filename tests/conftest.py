import importlib.util, os, shutil, sys
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault('FIFTYONE_DO_NOT_TRACK', 'true')
os.environ.setdefault('MPLBACKEND', 'Agg')
# one engine for the whole suite: backend='auto' would time every installed engine once for each new set of weights,
# seconds each (the notebooks test that measurement); the CLI subprocesses inherit it
os.environ.setdefault('MASKGEN_BACKEND', 'torch')


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory):
    "A tiny random Net saved as safetensors (seconds to run on small images)."
    import torch
    from maskgen.model import Net
    from maskgen.checkpoint import save_safetensors
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'tiny.safetensors'
    save_safetensors(Net(8, {'layers': [1, 1, 1, 1]}), path, threshold=0.5)
    return path


@pytest.fixture
def image_folder(tmp_path):
    "A folder of small 8- and 16-bit images."
    from PIL import Image
    import tifffile
    d = tmp_path / 'images'
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(d / f'rgb{i}.png')
    tifffile.imwrite(d / 'stack16.tif', rng.integers(200, 3000, (100, 140), dtype=np.uint16))
    return d


def run_maskgen(*args, timeout=300, **kw):
    "Run the `maskgen` command in a subprocess with this interpreter."
    import subprocess
    return subprocess.run([sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())', *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kw)


def skip_without_fiftyone():
    "Skip the test when FiftyOne or its bundled MongoDB is not installed."
    if importlib.util.find_spec('fiftyone') is None: pytest.skip("FiftyOne is not installed: pip install 'maskgen[browse]'")
    from maskgen.browse import bundled_mongod, FiftyOneDatabaseError
    try: bundled_mongod()
    except FiftyOneDatabaseError as e: pytest.skip(f"FiftyOne's mongod is missing: {e}")


@pytest.fixture(scope='module')
def fiftyone_db(tmp_path_factory):
    "A private HOME, FIFTYONE_DATABASE_DIR and MongoDB for FiftyOne, set before FiftyOne is imported; stopped and deleted afterwards."
    skip_without_fiftyone()
    from maskgen.browse import PrivateDatabase
    home = tmp_path_factory.mktemp('fiftyone-home')
    env = dict(FIFTYONE_DO_NOT_TRACK='true', HOME=str(home), MPLCONFIGDIR=str(home / 'mpl'), FIFTYONE_DATABASE_DIR=str(home / 'fiftyone-db'))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    db = PrivateDatabase(home / 'db')
    yield db
    db.stop()
    for k, v in saved.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v
    shutil.rmtree(home, ignore_errors=True)
