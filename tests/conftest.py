import os, sys
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault('FIFTYONE_DO_NOT_TRACK', 'true')
os.environ.setdefault('MPLBACKEND', 'Agg')


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
