"`maskgen predict` as a lab member runs it: a folder in, a folder of masks out, resumable, failures listed."
import os, signal, subprocess, sys, time
import numpy as np
from PIL import Image
from conftest import run_maskgen


def masks_in(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith('.'))


def test_predict_folder(tmp_path, image_folder, tiny_weights):
    out = tmp_path / 'masks'
    r = run_maskgen('predict', image_folder, '-o', out, '--weights', tiny_weights, '--quiet')
    assert r.returncode == 0, r.stderr
    assert masks_in(out) == ['rgb0_mask.png', 'rgb1_mask.png', 'rgb2_mask.png', 'rgb3_mask.png', 'stack16_mask.png']
    m = np.asarray(Image.open(out / 'stack16_mask.png'))
    assert m.shape == (100, 140) and set(np.unique(m)) <= {0, 255}
    assert '5 masked, 0 skipped' in r.stdout


def test_predict_skips_existing_and_overwrite(tmp_path, image_folder, tiny_weights):
    out = tmp_path / 'masks'
    out.mkdir()
    Image.fromarray(np.zeros((96, 128), np.uint8)).save(out / 'rgb0_mask.png')   # a valid mask (a file that is none is redone)
    kept = (out / 'rgb0_mask.png').read_bytes()
    r = run_maskgen('predict', image_folder, '-o', out, '--weights', tiny_weights, '--quiet')
    assert r.returncode == 0 and '4 masked, 1 skipped' in r.stdout
    assert (out / 'rgb0_mask.png').read_bytes() == kept
    r = run_maskgen('predict', image_folder / 'rgb0.png', '-o', out, '--weights', tiny_weights, '--overwrite', '--quiet')
    assert r.returncode == 0 and '1 masked' in r.stdout
    assert Image.open(out / 'rgb0_mask.png').size == (128, 96)


def test_predict_lists_failures_and_finishes_the_rest(tmp_path, image_folder, tiny_weights):
    (image_folder / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    out = tmp_path / 'masks'
    r = run_maskgen('predict', image_folder, '-o', out, '--weights', tiny_weights, '--quiet')
    assert r.returncode == 1
    assert 'FAILED' in r.stderr and 'corrupt.png' in r.stderr and 'Cannot read image' in r.stderr
    assert len(masks_in(out)) == 5


def test_predict_strategies_and_options(tmp_path, image_folder, tiny_weights):
    for args in (['--strategy', 'whole'], ['--tile-size', '64', '--overlap', '16', '--window', 'linear'],
                 ['--strategy', 'downsample', '--max-dim', '64'], ['--threshold', 'auto', '--prob']):
        out = tmp_path / ('m' + '_'.join(a.strip('-') for a in args))
        r = run_maskgen('predict', image_folder, '-o', out, '--weights', tiny_weights, '--quiet', *args)
        assert r.returncode == 0, (args, r.stderr)
    assert (tmp_path / 'mthreshold_auto_prob' / 'rgb1_prob.tif').exists()


def test_predict_bad_options_are_clear(tmp_path, image_folder, tiny_weights):
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'm', '--weights', tiny_weights, '--tile-size', '500', '--quiet')
    assert r.returncode == 2 and '--tile-size 500 must be a multiple of 32' in r.stderr   # checked once, before the model loads
    r = run_maskgen('predict', tmp_path / 'nope', '-o', tmp_path / 'm', '--weights', tiny_weights)
    assert r.returncode == 2 and 'nope does not exist' in r.stderr
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'm', '--weights', tmp_path / 'missing.pth')
    assert r.returncode == 2 and 'missing.pth does not exist' in r.stderr
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    r = run_maskgen('predict', image_folder, '-o', blocker / 'masks', '--weights', tiny_weights)
    assert r.returncode == 2 and 'Cannot create output folder' in r.stderr


def test_killed_batch_leaves_only_complete_masks_and_resumes(tmp_path, tiny_weights):
    "SIGKILL a batch run part way: every mask on disk decodes completely; running again finishes the rest."
    imgs = tmp_path / 'images'
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(40): Image.fromarray(rng.integers(0, 256, (256, 320), dtype=np.uint8)).save(imgs / f'im{i:02d}.png')
    out = tmp_path / 'masks'
    cmd = [sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())',
           'predict', str(imgs), '-o', str(out), '--weights', str(tiny_weights), '--quiet']
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(masks_in(out)) < 3): time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    done = masks_in(out)
    assert 3 <= len(done) < 40, len(done)
    for name in done:
        m = np.asarray(Image.open(out / name))   # a partial PNG would fail to decode
        assert m.shape == (256, 320)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(masks_in(out)) == 40
    assert f'{len(done)} skipped' in r.stdout
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')]


def test_info_and_help():
    r = run_maskgen('info')
    assert r.returncode == 0 and 'torch' in r.stdout and 'default_model' in r.stdout
    r = run_maskgen('predict', '--help')
    assert r.returncode == 0 and '--tile-size' in r.stdout and 'replace masks that exist' in r.stdout
    assert '--min-size' in r.stdout and '--fill-holes' in r.stdout and '--opening' in r.stdout   # the clean-up options
    r = run_maskgen()
    assert r.returncode == 0 and 'predict' in r.stdout


def _generator_masks(folder, weights, postprocess, strategy=None):
    "The masks `MaskGenerator.generate` makes of each image in `folder`, by file stem."
    from maskgen.generator import MaskGenerator
    gen = MaskGenerator(weights, device='cpu')
    return {f.stem: np.asarray(gen.generate(f, strategy, postprocess=postprocess)) for f in sorted(folder.iterdir())}


def test_predict_clean_up_options(tmp_path, image_folder, tiny_weights):
    "--min-size/--fill-holes/--opening give the generator's cleaned masks, whole or tiled, and the summary says which clean-up."
    clean_up = {'min_size': 40, 'max_hole': 40, 'opening': 1}
    raw = _generator_masks(image_folder, tiny_weights, None)
    expected = _generator_masks(image_folder, tiny_weights, clean_up)
    assert any((raw[s] != expected[s]).any() for s in raw)   # the clean-up changes these masks
    for name, args in (('whole', ['--strategy', 'whole']), ('tile', ['--tile-size', '64', '--overlap', '16'])):
        out = tmp_path / name
        r = run_maskgen('predict', image_folder, '-o', out, '--weights', tiny_weights, '--quiet',
                        '--min-size', '40', '--fill-holes', '40', '--opening', '1', *args)
        assert r.returncode == 0, r.stderr
        assert '(clean-up min_size 40, max_hole 40, opening 1)' in r.stdout
        got = {p.name[:-len('_mask.png')]: np.asarray(Image.open(p)) for p in out.iterdir()}
        if name == 'whole': assert all((got[s] == expected[s]).all() for s in expected)
        else:   # tiled: the generator's tiled raw mask, cleaned as a whole
            tiled = _generator_masks(image_folder, tiny_weights, clean_up, {'name': 'tile', 'tile_size': 64, 'overlap': 16})
            assert all((got[s] == tiled[s]).all() for s in tiled)


def test_predict_from_run_applies_its_stored_clean_up(tmp_path, image_folder, tiny_weights):
    from maskgen.generator import save_inference_settings
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'best.safetensors').write_bytes(tiny_weights.read_bytes())
    save_inference_settings(run, {'min_size': 40, 'max_hole': 40})
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'stored', '--from-run', run, '--quiet', '--strategy', 'whole')
    assert r.returncode == 0 and '(clean-up min_size 40, max_hole 40)' in r.stdout, r.stderr
    expected = _generator_masks(image_folder, tiny_weights, {'min_size': 40, 'max_hole': 40})
    assert all((np.asarray(Image.open(tmp_path / 'stored' / f'{s}_mask.png')) == m).all() for s, m in expected.items())
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'off', '--from-run', run, '--quiet', '--strategy', 'whole', '--min-size', '0')
    assert r.returncode == 0 and 'clean-up' not in r.stdout, r.stderr     # an option given replaces the run's clean-up
    raw = _generator_masks(image_folder, tiny_weights, None)
    assert all((np.asarray(Image.open(tmp_path / 'off' / f'{s}_mask.png')) == m).all() for s, m in raw.items())


def test_predict_bad_clean_up_values_are_one_line(tmp_path, image_folder, tiny_weights):
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'm', '--weights', tiny_weights, '--min-size', '-3')
    assert r.returncode == 2 and '--min-size -3.0: must be a number of pixels >= 0' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path / 'm').exists()   # checked before anything is written or loaded
