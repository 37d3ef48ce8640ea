"`maskgen preflight` as a subprocess: exit status, JSON issue codes, options; errors are one line from the `maskgen` dispatcher."
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

RUN_PREFLIGHT = 'import sys; from maskgen.cli import main; sys.exit(main(["preflight", *sys.argv[1:]]))'


def preflight(*args):
    "Run `maskgen preflight` in a fresh interpreter, through the `maskgen` dispatcher as the console script does."
    return subprocess.run([sys.executable, '-c', RUN_PREFLIGHT, *map(str, args)], capture_output=True, text=True, timeout=120)


def write_png(path:Path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def mask(seed):
    m = np.zeros((16, 16), np.uint8)
    m[seed % 8:seed % 8 + 6, 2:10] = 255
    return m


@pytest.fixture
def good_root(tmp_path):
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for k in range(2):
            name = f'{split}{k}'
            write_png(tmp_path/split/'images'/f'{name}.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
            write_png(tmp_path/split/'masks'/f'{name}.png', mask(k))
    return tmp_path


@pytest.fixture
def broken_root(good_root):
    root, rng = good_root, np.random.default_rng(1)
    write_png(root/'train'/'images'/'nomask.png', rng.integers(0, 256, (16, 16), dtype=np.uint8))
    write_png(root/'train'/'masks'/'orphan.png', mask(0))
    write_png(root/'train'/'images'/'sizebad.png', rng.integers(0, 256, (16, 16), dtype=np.uint8))
    write_png(root/'train'/'masks'/'sizebad.png', mask(0)[:10])
    (root/'train'/'images'/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    write_png(root/'train'/'masks'/'corrupt.png', mask(0))
    write_png(root/'train'/'images'/'empty.png', rng.integers(0, 256, (16, 16), dtype=np.uint8))
    write_png(root/'train'/'masks'/'empty.png', np.zeros((16, 16), np.uint8))
    (root/'val'/'images'/'leak.png').write_bytes((root/'train'/'images'/'train0.png').read_bytes())
    write_png(root/'val'/'masks'/'leak.png', mask(0))
    return root


def test_good_dataset_exits_0(good_root):
    res = preflight(good_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == ''
    assert 'ready to train' in res.stdout and 'NOT ready' not in res.stdout


def test_broken_dataset_exits_2_with_codes(broken_root):
    res = preflight(broken_root, '--json')
    assert res.returncode == 2, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report['ok'] is False
    found = sorted((i['code'], Path(i['path']).relative_to(broken_root).as_posix()) for i in report['issues'])
    assert found == sorted([
        ('MISSING_MASK', 'train/images/nomask.png'),
        ('MISSING_IMAGE', 'train/masks/orphan.png'),
        ('SIZE_MISMATCH', 'train/masks/sizebad.png'),
        ('UNREADABLE', 'train/images/corrupt.png'),
        ('EMPTY_MASK', 'train/masks/empty.png'),
        ('SPLIT_LEAK', 'val/images/leak.png'),
    ])
    assert {i['severity'] for i in report['issues'] if i['code'] == 'EMPTY_MASK'} == {'warning'}


def test_text_report_names_files(broken_root):
    res = preflight(broken_root)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f'maskgen preflight: error: {broken_root} is not ready to train: fix the errors its preflight '
                                       f'report lists, then check again with `maskgen preflight {broken_root}`'], res.stderr
    assert res.stdout.startswith(f'Preflight of {broken_root}: NOT ready to train')
    assert 'MISSING_MASK' in res.stdout and 'train/images/nomask.png' in res.stdout


def test_missing_split_exits_2(good_root):
    for p in sorted((good_root/'val').rglob('*'), reverse=True): p.unlink() if p.is_file() else p.rmdir()
    (good_root/'val').rmdir()
    res = preflight(good_root, '--json')
    assert res.returncode == 2
    assert [(i['code'], Path(i['path']).name) for i in json.loads(res.stdout)['issues']] == [('EMPTY_SPLIT', 'val')]


@pytest.mark.parametrize('option', ['--mask-threshold', '--mask_threshold'])
def test_mask_threshold_option(good_root, option):
    res = preflight(good_root, option, '300', '--json')   # above 255: every 8-bit mask is empty
    assert res.returncode == 0, res.stderr                # empty masks are only warnings
    report = json.loads(res.stdout)
    assert report['summary']['mask_threshold'] == 300
    assert {i['code'] for i in report['issues']} == {'EMPTY_MASK'}


def test_help_and_usage_errors(tmp_path):
    res = preflight('--help')
    assert res.returncode == 0 and 'data_root' in res.stdout and 'print the report as JSON' in res.stdout
    res = preflight()
    assert res.returncode == 2 and 'data_root' in res.stderr   # argparse: missing argument

