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
    (lambda g, t: g.generate(np.zeros((6, 64, 64), np.uint16)), ValueError, 'has 6 channels: pass channels='),
    (lambda g, t: g.generate(np.zeros((64, 64, 3)), channels=5), ValueError, 'channels=5 is out of range'),
    (lambda g, t: g.generate(np.zeros((2, 3, 64, 64))), ValueError, 'pick one plane'),
    (lambda g, t: g.generate(np.zeros((2, 3, 64, 64)), plane=(0, 5)), ValueError, 'plane=(0, 5) is out of range'),
    (lambda g, t: g.generate(IMG, plane=0), ValueError, 'is a single image, not a stack of planes'),
    (lambda g, t: g.generate(IMG, threshold=True), ValueError, 'threshold=True is a yes/no value, not a probability'),
    (lambda g, t: g.generate(IMG, threshold=np.bool_(False)), ValueError, 'is a yes/no value'),
    (lambda g, t: g.generate(IMG, threshold='0.5'), ValueError, "threshold='0.5' must be a probability"),
    (lambda g, t: g.generate(IMG, threshold=float('nan')), ValueError, 'threshold=nan must be a probability'),
    (lambda g, t: g.generate(IMG, channels=1.0), ValueError, 'channels=1.0 must be a channel number'),
    (lambda g, t: g.generate_and_save(IMG, t / 'm.png', prob_path=t / 'p.jpg'), ValueError, 'Cannot save a probability map as p.jpg'),
    (lambda g, t: g.generate_and_save(IMG, t / 'm.jpg'), ValueError, 'Cannot save a mask as m.jpg'),
])
def test_generate_bad_input(gen, tmp_path, call, error, message):
    with pytest.raises(error) as e: call(gen, tmp_path)
    assert message in str(e.value)


def test_refused_output_paths_write_nothing(gen, tmp_path):
    for kw in (dict(output_path=tmp_path / 'm.jpg'), dict(output_path=tmp_path / 'm.png', prob_path=tmp_path / 'p.jpeg')):
        with pytest.raises(ValueError, match='Cannot save'): gen.generate_and_save(IMG, **kw)
    assert list(tmp_path.iterdir()) == []


def test_calibrated_threshold_out_of_range_is_named(tiny_weights):
    net = MaskGenerator(tiny_weights, device='cpu').model
    for stored in (1.7, -0.2, float('nan')):
        g = MaskGenerator.from_model(net, device='cpu', threshold=stored)
        with pytest.raises(ValueError, match=f"calibrated threshold stored with the weights .* but that is {stored!r}, not a probability"):
            g.generate(IMG, threshold='auto')
        assert g.generate(IMG, threshold=0.5).size == (160, 128)


def test_numpy_scalars_work_like_python_numbers(gen):
    a = np.random.default_rng(0).integers(0, 256, (128, 160, 4), dtype=np.uint8)
    plain = np.asarray(gen.generate(a, {'name': 'tile', 'tile_size': 64, 'overlap': 16}, threshold=0.5, channels=[0, 1, 2]))
    numpy = np.asarray(gen.generate(a, {'name': 'tile', 'tile_size': np.int64(64), 'overlap': np.int32(16)}, threshold=np.float32(0.5),
                                    channels=np.array([0, 1, 2])))
    assert (plain == numpy).all()
    small = gen.predict_probability(a, {'name': 'downsample', 'max_dim': np.int64(64)}, channels=np.int64(3))
    assert small.shape == (128, 160)


@pytest.mark.parametrize('shape', [(1, 100), (2, 100, 3), (3, 100, 3), (100, 1, 3), (2, 2)])
def test_thin_image_files_keep_their_shape(gen, tmp_path, shape):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / 'thin.png')
    assert np.asarray(gen.generate(tmp_path / 'thin.png')).shape == shape[:2]
    assert gen.generate(tmp_path / 'thin.png', return_prob=True).shape == shape[:2]
    assert np.asarray(gen.generate_and_save(tmp_path / 'thin.png', tmp_path / 'thin_mask.png')).shape == shape[:2]
    assert np.asarray(Image.open(tmp_path / 'thin_mask.png')).shape == shape[:2]


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


def test_tiles_larger_than_the_image_cover_it(gen):
    "As in the lab's code, a tile larger than the image is cut to it: the mask is the whole-image mask, not an error."
    tiled = np.asarray(gen.generate(IMG, strategy={'name': 'tile', 'tile_size': 512}))
    assert tiled.shape == IMG.shape[:2]
    np.testing.assert_array_equal(tiled, np.asarray(gen.generate(IMG, strategy='whole')))
