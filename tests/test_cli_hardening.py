"""`maskgen predict` and the `maskgen` dispatcher hardened (issue 21): inputs are never overwritten, reruns do not mask their own
masks, concurrent runs lose nothing, broken masks are redone, options fail once before the model loads, and every error is one
line with an exit status (0 done, 1 some inputs failed, 2 bad usage or input, 130 Ctrl-C), never a traceback."""
import json, os, signal, subprocess, sys, time
import numpy as np
import pytest
from PIL import Image
from conftest import run_maskgen

ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def gray(path, h=64, w=80, seed=0):
    "Save a random 8-bit grayscale image at `path`."
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)).save(path)
    return path


def is_mask(path, shape):
    "Whether `path` decodes completely as a 0/255 mask of `shape`."
    m = np.asarray(Image.open(path))
    return m.shape == shape and set(np.unique(m)) <= {0, 255}


def error_line(r, command='predict'):
    "The single `maskgen COMMAND: error: ...` line of a failed run; fails on a traceback or more lines."
    assert 'Traceback' not in r.stderr + r.stdout, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'maskgen {command}: error: '), r.stderr
    return lines[0]


def names(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*') if p.is_file())


# item 1 ------------------------------------------------------------------------------------------------------------------

def test_overwrite_never_replaces_an_input(tmp_path, tiny_weights):
    "Reproduction: `predict d -o d --pattern '{stem}.png' --overwrite` turned d/img.png into its own mask."
    d = gray(tmp_path / 'd' / 'img.png').parent
    image = (d / 'img.png').read_bytes()
    for extra in (['--overwrite'], []):
        r = run_maskgen('predict', d, '-o', d, '--pattern', '{stem}.png', '--weights', tiny_weights, '--quiet', *extra)
        assert r.returncode == 2 and 'after the image itself' in error_line(r)
        assert (d / 'img.png').read_bytes() == image
    # an annotation beside its image, with -o the input folder spelled another way ('..'): refused, not replaced
    (d / 'sub').mkdir()
    truth = np.zeros((64, 80), np.uint8)
    truth[10:30, 20:50] = 255
    Image.fromarray(truth).save(d / 'img_mask.png')
    annotation = (d / 'img_mask.png').read_bytes()
    r = run_maskgen('predict', d, '-o', d / 'sub' / '..', '--overwrite', '--weights', tiny_weights, '--quiet')
    assert r.returncode == 2 and 'img_mask.png would be replaced (--overwrite), but it is one of the input files' in error_line(r)
    assert (d / 'img_mask.png').read_bytes() == annotation and names(d) == ['img.png', 'img_mask.png']
    # without --overwrite the valid annotation counts as done, and is left alone
    r = run_maskgen('predict', d, '-o', d, '--weights', tiny_weights, '--quiet')
    assert r.returncode == 0 and '0 masked, 1 skipped' in r.stdout, r.stderr
    assert (d / 'img_mask.png').read_bytes() == annotation
    # a mask path that is a symbolic link to an input image is refused too
    out = tmp_path / 'out'
    out.mkdir()
    gray(d / 'other.png', seed=1)
    (out / 'other_mask.png').symlink_to(d / 'img.png')
    (out / 'img_mask.png').symlink_to(d / 'img.png')
    for extra in (['--overwrite'], []):
        r = run_maskgen('predict', d / 'other.png', d / 'img.png', '-o', out, '--weights', tiny_weights, '--quiet', *extra)
        assert r.returncode == 2 and 'mask.png would be replaced' in error_line(r) and f'input files ({d / "img.png"})' in error_line(r)
    assert (out / 'other_mask.png').is_symlink() and names(out) == ['img_mask.png', 'other_mask.png']
    assert (d / 'img.png').read_bytes() == image


# item 2 ------------------------------------------------------------------------------------------------------------------

def test_reruns_into_the_input_tree_do_not_mask_masks(tmp_path, tiny_weights):
    "Reproduction: with -o the input folder, or --recursive with -o data/masks, each rerun masked the previous masks."
    d = tmp_path / 'd'
    for i in range(2): gray(d / f'img{i}.png', seed=i)
    for run in range(3):
        r = run_maskgen('predict', d, '-o', d, '--prob', '--weights', tiny_weights, '--quiet', env=ENV)
        assert r.returncode == 0, r.stderr
    assert 'left out 4 earlier outputs' in r.stdout and '0 masked, 2 skipped' in r.stdout
    assert names(d) == ['img0.png', 'img0_mask.png', 'img0_prob.tif', 'img1.png', 'img1_mask.png', 'img1_prob.tif']
    data = tmp_path / 'data'
    gray(data / 'a' / 'x.png'); gray(data / 'b' / 'y.png', seed=1)
    for run in range(3):
        r = run_maskgen('predict', data, '--recursive', '-o', data / 'masks', '--weights', tiny_weights, '--quiet', env=ENV)
        assert r.returncode == 0, r.stderr
    assert '0 masked, 2 skipped' in r.stdout
    assert names(data) == ['a/x.png', 'b/y.png', 'masks/x_mask.png', 'masks/y_mask.png']


# item 3 ------------------------------------------------------------------------------------------------------------------

def test_startup_cleanup_removes_only_stale_temp_files(tmp_path, tiny_weights):
    "A run's start-up cleanup used to delete every temporary file of its masks, including those another run was writing."
    gray(tmp_path / 'in' / 'a.png')
    out = tmp_path / 'out'
    out.mkdir()
    fresh, stale = out / '.a_mask.png.1234abcd.tmp', out / '.a_mask.png.5678ef01.tmp'
    fresh.write_bytes(b'another run is writing this')
    stale.write_bytes(b'left by a run killed two days ago')
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    r = run_maskgen('predict', tmp_path / 'in', '-o', out, '--weights', tiny_weights, '--quiet')
    assert r.returncode == 0, r.stderr
    assert fresh.exists() and not stale.exists()
    assert is_mask(out / 'a_mask.png', (64, 80))


def test_two_concurrent_runs_on_one_folder_lose_nothing(tmp_path, tiny_weights):
    imgs = tmp_path / 'images'
    for i in range(16): gray(imgs / f'im{i:02d}.png', 96, 128, seed=i)
    out = tmp_path / 'masks'
    cmd = [sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())',
           'predict', str(imgs), '-o', str(out), '--weights', str(tiny_weights), '--quiet']
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for rc, stdout, stderr in results:
        assert rc == 0 and ' 0 failed' in stdout, stderr
        masked, skipped = (int(stdout.split(' masked')[0].split()[-1]), int(stdout.split(' skipped')[0].split()[-1]))
        assert masked + skipped == 16
    assert names(out) == [f'im{i:02d}_mask.png' for i in range(16)]   # no temporary file left behind
    assert all(is_mask(out / f'im{i:02d}_mask.png', (96, 128)) for i in range(16))


# item 4 ------------------------------------------------------------------------------------------------------------------

def test_broken_existing_masks_are_redone_not_skipped(tmp_path, tiny_weights):
    "Reproduction: a 0-byte, truncated or non-image file, or a folder, at the mask's path was reported 'skipped (exists)', rc 0."
    imgs = tmp_path / 'images'
    for i in range(6): gray(imgs / f'i{i}.png', seed=i)
    out = tmp_path / 'masks'
    out.mkdir()
    good = np.zeros((64, 80), np.uint8)
    Image.fromarray(good).save(out / 'i5_mask.png')
    (out / 'i0_mask.png').write_bytes(b'')
    (out / 'i1_mask.png').write_bytes((out / 'i5_mask.png').read_bytes()[:40])
    (out / 'i2_mask.png').write_text('not an image')
    (out / 'i3_mask.png').mkdir()
    (out / 'i3_mask.png' / 'keep.txt').write_text('mine')
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(out / 'i4_mask.png')
    kept = (out / 'i5_mask.png').read_bytes()
    r = run_maskgen('predict', imgs, '-o', out, '--weights', tiny_weights, '--quiet')
    assert r.returncode == 1
    assert '4 masked, 1 skipped' in r.stdout and ' 1 failed' in r.stdout
    for i, why in [(0, 'is empty (0 bytes)'), (1, 'is truncated (no end of PNG)'), (2, 'cannot be decoded'),
                   (4, 'is 32x32 pixels, its image 80x64')]:
        assert f'REDO {out / f"i{i}_mask.png"}: the existing i{i}_mask.png {why}' in r.stdout
        assert is_mask(out / f'i{i}_mask.png', (64, 80))
    assert 'FAILED' in r.stderr and 'i3_mask.png is a folder, not a mask file' in r.stderr and 'Traceback' not in r.stderr
    assert (out / 'i3_mask.png' / 'keep.txt').read_text() == 'mine'
    assert (out / 'i5_mask.png').read_bytes() == kept


# item 5 ------------------------------------------------------------------------------------------------------------------

def test_bad_weights_are_one_line_errors(tmp_path, image_folder, tiny_weights):
    "Reproduction: a text file as --weights gave a KeyError traceback; a malicious pickle an UnpicklingError traceback."
    import torch
    from safetensors.torch import save_file, load_file
    (tmp_path / 'notes.pth').write_text('these are my notes, not weights\n')

    class Payload:
        def __reduce__(self): return (print, ('PWNED',))
    torch.save({'model_state_dict': Payload()}, tmp_path / 'evil.pth')
    sd = load_file(str(tiny_weights))
    save_file(sd, tmp_path / 'huge.safetensors', metadata={'format': 'maskgen', 'threshold': '0.5',
                                                           'config': json.dumps({'channels': 10**9, 'layers': [1, 1, 1, 1]})})
    save_file(sd, tmp_path / 'cut.safetensors', metadata={'format': 'maskgen', 'config': '{"channels": 8, "lay'})
    for name, expect in [('notes.pth', 'notes.pth is not a model checkpoint: it is text'), ('evil.pth', 'Refused to load'),
                         ('huge.safetensors', 'huge.safetensors'), ('cut.safetensors', 'cut.safetensors is not valid JSON')]:
        r = run_maskgen('predict', image_folder, '-o', tmp_path / 'm', '--weights', tmp_path / name, '--quiet')
        line = error_line(r)
        assert r.returncode == 2 and expect in line, line
        assert 'PWNED' not in r.stdout + r.stderr
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'm', '--weights', tmp_path / 'notes.pth', '--quiet')
    assert 'Python objects' not in r.stderr
    assert not list((tmp_path / 'm').iterdir())


@pytest.mark.parametrize('pattern', ['{foo}.png', '{0}.png', '{}.png', '{stem.png'])
def test_pattern_fields_are_usage_errors(tmp_path, image_folder, tiny_weights, pattern):
    "Reproduction: --pattern '{foo}.png' raised KeyError, '{0}.png' IndexError, both as tracebacks."
    r = run_maskgen('predict', image_folder, '-o', tmp_path / 'm', '--pattern', pattern, '--weights', tiny_weights)
    assert r.returncode == 2 and f'--pattern {pattern}' in error_line(r)


def test_ctrl_c_is_one_line_and_status_130(tmp_path, tiny_weights):
    imgs = tmp_path / 'images'
    for i in range(30): gray(imgs / f'im{i:02d}.png', 256, 320, seed=i)
    out = tmp_path / 'masks'
    p = subprocess.Popen([sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())', 'predict', str(imgs),
                          '-o', str(out), '--weights', str(tiny_weights), '--quiet', '--tta', '8'],   # 8 views: slow enough to interrupt
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # as from a terminal, even when this runs in the background
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or not list(out.glob('*_mask.png'))): time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert 'Traceback' not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith('maskgen predict: interrupted (Ctrl-C): ') and 'run the same command again' in stderr
    done = sorted(out.glob('*_mask.png'))
    assert 1 <= len(done) < 30 and all(is_mask(m, (256, 320)) for m in done)


def test_unexpected_errors_are_one_line_with_a_debug_hint(monkeypatch, capsys):
    "A bug (here a command raising KeyError) is one line and status 1; MASKGEN_DEBUG=1 shows the traceback."
    import maskgen.cli as cli

    def broken(): raise KeyError('layers')
    monkeypatch.setattr(cli, 'info', broken)
    monkeypatch.delenv('MASKGEN_DEBUG', raising=False)
    assert cli.main(['info']) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["maskgen info: error: unexpected KeyError: 'layers'. This is a bug in maskgen: set MASKGEN_DEBUG=1 "
                                "to see the traceback, and please report it"]
    monkeypatch.setenv('MASKGEN_DEBUG', '1')
    with pytest.raises(KeyError): cli.main(['info'])


# item 6 ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('options,message', [
    (['--threshold', 'abc'], '--threshold abc: give a probability in [0, 1]'),
    (['--threshold', '1.5'], '--threshold 1.5: give a probability in [0, 1]'),
    (['--strategy', 'bogus'], '--strategy bogus: use one of whole, tile, downsample'),
    (['--tile-size', '500'], '--tile-size 500 must be a multiple of 32'),
    (['--tile-size', '64', '--overlap', '40'], '--overlap 40 must be an integer in [0, tile_size/2)'),
    (['--window', 'box'], "--window 'box': use one of"),
    (['--strategy', 'whole', '--max-dim', '512'], '--max-dim does not apply to --strategy whole'),
    (['--channels', '0,1'], '--channels 0,1: give one index'),
    (['--pattern', '{stem}.jpg'], '--pattern {stem}.jpg: a mask is saved as .png, .tif, .tiff, .bmp (lossless), not .jpg'),
    (['--tta', '3'], '--tta 3: use 1 (off), 4'),
    (['--device', 'tpu'], '--device tpu: Unknown device'),
])
def test_bad_options_fail_once_before_the_model_loads(tmp_path, image_folder, options, message):
    "Reproduction: each of these was reported once per image after loading, with status 1 (or 'could not convert string to float')."
    (tmp_path / 'notes.pth').write_text('not weights: loading them would fail, so an option error here came first\n')
    out = tmp_path / 'never'
    r = run_maskgen('predict', image_folder, '-o', out, '--weights', tmp_path / 'notes.pth', *options)
    assert r.returncode == 2 and message in error_line(r)
    assert not out.exists()   # nothing was done


# item 7 ------------------------------------------------------------------------------------------------------------------

def test_corrupt_json_names_its_file(tmp_path, tiny_weights):
    "A run folder's report.json cut short: `maskgen info` names it (it used to be a bare JSONDecodeError)."
    from maskgen.checkpoint import save_safetensors
    from maskgen.model import Net
    run = tmp_path / 'run'
    save_safetensors(Net(8, {'layers': [1, 1, 1, 1]}), run / 'best.safetensors', threshold=0.5)
    (run / 'report.json').write_text('{"status": "runn')
    r = run_maskgen('info', run)
    assert r.returncode == 2 and f'{run / "report.json"} is not valid JSON' in error_line(r, 'info')


def test_plane_masks_one_plane_of_a_stack(tmp_path, tiny_weights):
    "Reproduction: a 4-D TIFF failed with advice to use stack[0], which the CLI cannot do."
    import tifffile
    stack = np.random.default_rng(0).integers(0, 4000, (2, 5, 64, 80), dtype=np.uint16)
    (tmp_path / 'stacks').mkdir(); (tmp_path / 'planes').mkdir()
    tifffile.imwrite(tmp_path / 'stacks' / 'tz.tif', stack, imagej=True, metadata={'axes': 'TZYX'})
    tifffile.imwrite(tmp_path / 'planes' / 'tz.tif', stack[1, 3])
    r = run_maskgen('predict', tmp_path / 'stacks', '-o', tmp_path / 'm0', '--weights', tiny_weights, '--quiet')
    assert r.returncode == 1 and 'FAILED' in r.stderr and '--plane 0,0' in r.stderr and 'stack[0]' not in r.stderr
    for run in range(2):
        r = run_maskgen('predict', tmp_path / 'stacks', '-o', tmp_path / 'm1', '--plane', '1,3', '--weights', tiny_weights, '--quiet')
        assert r.returncode == 0, r.stderr
    assert '0 masked, 1 skipped' in r.stdout   # the existing mask was checked against the plane's size
    r = run_maskgen('predict', tmp_path / 'planes', '-o', tmp_path / 'm2', '--weights', tiny_weights, '--quiet')
    assert r.returncode == 0, r.stderr
    assert is_mask(tmp_path / 'm1' / 'tz_mask.png', (64, 80))
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'm1' / 'tz_mask.png')), np.asarray(Image.open(tmp_path / 'm2' / 'tz_mask.png')))
    r = run_maskgen('predict', tmp_path / 'stacks', '-o', tmp_path / 'm3', '--plane', 'z3', '--weights', tiny_weights)
    assert r.returncode == 2 and '--plane z3: give the' in error_line(r)


def test_symlink_loop_in_the_inputs_is_named(tmp_path, tiny_weights):
    (tmp_path / 'loop').symlink_to(tmp_path / 'loop')
    r = run_maskgen('predict', tmp_path / 'loop', '-o', tmp_path / 'm', '--weights', tiny_weights)
    assert r.returncode == 2 and 'loop is a symbolic link loop' in error_line(r)


# issue 15, item 4: every command exits the same way ------------------------------------------------------------------------

TINY_TRAIN = dict(channels=8, layers=[1, 1, 1, 1], stochastic_depth=0.0, ema=0.9, img_size=32, crop_per_img=1, batch_size=2,
                  lr=1e-3, weight_decay=0.0, warmup_epoch=0, scheduler_params={'T-max': 1}, epochs=1, gradient_clip=1.0,
                  num_workers=0, amp='off', seed=0)


def training_folder(root, n=2):
    "A data folder of `n` train and `n` val pairs of 48x48 grayscale images and masks."
    for k, split in enumerate(('train', 'val')):
        for i in range(n):
            gray(root / split / 'images' / f'{split}{i}.png', 48, 48, seed=k * n + i)   # no image in both splits
            m = np.zeros((48, 48), np.uint8); m[8:30, 10 + i:34] = 255
            (root / split / 'masks').mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(root / split / 'masks' / f'{split}{i}.png')
    return root


def test_train_and_preflight_exit_like_every_command(tmp_path):
    "maskgen train and preflight used to call sys.exit themselves; now `main` gives 0, or 2 with one `error:` line, as for predict."
    data = training_folder(tmp_path / 'data')
    cfg = tmp_path / 'cfg.json'
    cfg.write_text(json.dumps(TINY_TRAIN))
    r = run_maskgen('train', '--config', cfg, '--data-root', data, '--dry-run', env=ENV)
    assert r.returncode == 0 and 'ready to train' in r.stdout and r.stderr == '', r.stderr
    r = run_maskgen('preflight', data, env=ENV)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    r = run_maskgen('train', '--data-root', data, env=ENV)    # usage: no config
    assert r.returncode == 2 and error_line(r, 'train') == ('maskgen train: error: Pass --config cfg.json, or --resume RUN_FOLDER '
                                                             'to continue a run')
    r = run_maskgen('train', '--config', tmp_path / 'nope.json', '--data-root', data, env=ENV)   # bad input: a missing file
    assert r.returncode == 2 and f'Config file {tmp_path / "nope.json"} does not exist' in error_line(r, 'train')
    (tmp_path / 'cut.json').write_text('{"channels": 8,')
    r = run_maskgen('train', '--config', tmp_path / 'cut.json', '--data-root', data, env=ENV)
    assert r.returncode == 2 and 'cut.json is not valid JSON' in error_line(r, 'train')
    (data / 'val' / 'masks' / 'val1.png').unlink()                                           # bad input: the data has an error
    for args, command in [(['train', '--config', cfg, '--data-root', data, '--dry-run'], 'train'), (['preflight', data], 'preflight')]:
        r = run_maskgen(*args, env=ENV)
        assert r.returncode == 2 and 'NOT ready to train' in r.stdout and 'MISSING_MASK' in r.stdout
        assert f'{data} is not ready to train: fix the errors its preflight report lists' in error_line(r, command)


def test_a_training_runtime_error_is_a_one_line_usage_error(tmp_path, monkeypatch, capsys):
    "Out of GPU memory (a RuntimeError raised while training) is the run's input, not a bug: status 2 and one line, as before."
    import maskgen.cli as cli, maskgen.train as mtrain
    data = training_folder(tmp_path / 'data')
    cfg = tmp_path / 'cfg.json'
    cfg.write_text(json.dumps(TINY_TRAIN))
    def out_of_memory(*args, **kwargs): raise RuntimeError("Out of GPU memory while training with batch_size=2 and img_size=32.\nLower batch_size")
    monkeypatch.setattr(mtrain, 'train', out_of_memory)
    monkeypatch.delenv('MASKGEN_DEBUG', raising=False)
    assert cli.main(['train', '--config', str(cfg), '--data-root', str(data), '--no-wandb']) == 2
    assert capsys.readouterr().err.splitlines() == ['maskgen train: error: Out of GPU memory while training with batch_size=2 and '
                                                    'img_size=32. Lower batch_size']
