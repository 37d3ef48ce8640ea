"Every bad input gets a clear error that names the file or value and says what to do."
import pickle
import numpy as np
import pytest
import torch
from PIL import Image
from maskgen.generator import MaskGenerator
from maskgen.model import Net


@pytest.fixture(scope='module')
def gen(tiny_weights):
    return MaskGenerator(tiny_weights, device='cpu')


IMG = np.zeros((128, 160, 3), np.uint8)


@pytest.mark.parametrize('call,error,message', [
    (lambda g, t: g.generate(t / 'missing.png'), FileNotFoundError, 'missing.png does not exist'),
    (lambda g, t: g.generate(IMG, strategy={'name': 'blocks'}), ValueError, 'use one of whole, tile, downsample'),
    (lambda g, t: g.generate(IMG, strategy={'name': 'tile', 'tile_size': 64, 'overlap': 32}), ValueError, 'overlap=32 must be'),
    (lambda g, t: g.generate(IMG, strategy={'name': 'tile', 'tile_size': 100}), ValueError, 'multiple of 32'),
    (lambda g, t: g.generate(IMG, threshold=-0.1), ValueError, 'threshold=-0.1 must be a probability in [0, 1]'),
    (lambda g, t: g.generate({'not': 'an image'}), TypeError, 'Unsupported image type dict'),
    (lambda g, t: g.generate(np.zeros((0, 0, 3), np.uint8)), ValueError, 'is empty'),
    (lambda g, t: g.generate(IMG, strategy={'name': 'tile', 'tile_size': 512}), ValueError, 'smaller than tile_size 512'),
    (lambda g, t: g.generate(np.zeros((6, 64, 64), np.uint16)), ValueError, 'has 6 channels: pass channels='),
    (lambda g, t: g.generate(np.zeros((64, 64, 3)), channels=5), ValueError, 'channels=5 is out of range'),
    (lambda g, t: g.generate(np.zeros((2, 3, 64, 64))), ValueError, 'pick one plane'),
])
def test_generate_bad_input(gen, tmp_path, call, error, message):
    with pytest.raises(error) as e: call(gen, tmp_path)
    assert message in str(e.value)


def test_corrupt_and_truncated_images(gen, tmp_path):
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / 'ok.png')
    (tmp_path / 'trunc.png').write_bytes((tmp_path / 'ok.png').read_bytes()[:60])
    (tmp_path / 'junk.tif').write_bytes(b'not a tiff at all')
    for name in ('trunc.png', 'junk.tif'):
        with pytest.raises(ValueError) as e: gen.generate(tmp_path / name)
        assert name in str(e.value) and 'Cannot read image' in str(e.value)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='download_weights'): MaskGenerator(tmp_path / 'none.pth')
    torch.save({'model_state_dict': Net(16, {'layers': [1, 1, 2, 1]}).state_dict()}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='unexpected keys .9.: encoder.stage3.1'): MaskGenerator(tmp_path / 'other.pth', config={'layers': [1, 1, 1, 1]})

    class Payload:
        def __reduce__(self): return (print, ('pwned',))
    torch.save({'model_state_dict': Payload()}, tmp_path / 'unsafe.pth')
    with pytest.raises(pickle.UnpicklingError, match='Refused to load'): MaskGenerator(tmp_path / 'unsafe.pth')
    torch.save({'fc.weight': torch.zeros(3)}, tmp_path / 'foreign.pth')
    with pytest.raises(ValueError, match='not a maskgen Net'): MaskGenerator(tmp_path / 'foreign.pth')


def test_output_folder_not_writable(gen, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(PermissionError, match='Cannot create output folder'):
        gen.generate_and_save(IMG, blocker / 'sub' / 'm.png', strategy='whole')


def test_generate_and_save_is_atomic_under_failure(gen, tmp_path, monkeypatch):
    out = tmp_path / 'm.png'
    gen.generate_and_save(IMG, out, strategy='whole')
    before = out.read_bytes()
    import os
    def failing_replace(src, dst): raise OSError('simulated crash before rename')
    monkeypatch.setattr(os, 'replace', failing_replace)
    with pytest.raises(OSError, match='simulated crash'): gen.generate_and_save(np.full((128, 160, 3), 255, np.uint8), out, strategy='whole')
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['m.png']
