"""`maskgen info PATH` as a lab member uses it on a checkpoint found on a shared drive: which network, config, EMA, epoch,
metrics, threshold, provenance and sha256; `--json` for scripts; one line for a file that is no checkpoint."""
import json
import numpy as np
import pytest
from PIL import Image
from conftest import ROOT, run_maskgen

LAB = ROOT.parent / 'shared' / 'fixtures' / 'lab_checkpoint'
needs_lab = pytest.mark.skipif(not (LAB / 'lab_small.pth').exists(), reason='the lab fixture (shared/) is not beside this checkout')


@needs_lab
def test_info_on_the_lab_checkpoint():
    sha = json.loads((LAB / 'provenance.json').read_text())['lab_small.pth']['sha256']
    r = run_maskgen('info', LAB / 'lab_small.pth')
    assert r.returncode == 0, r.stderr
    lines = dict(line.strip().split(': ', 1) for line in r.stdout.splitlines())
    assert lines['architecture'] == 'Net channels=8, layers=[1, 1, 2, 1], norm=global (inferred from the tensor shapes)'
    assert lines['config'] == 'none stored' and lines['ema'] == 'yes (weights used: ema)' and lines['epoch'] == '2'
    assert lines['metrics'].startswith('valid_loss=0.69') and lines['threshold'].startswith('none calibrated')
    assert lines['sha256'] == sha and lines['format'] == 'pth'
    r = run_maskgen('info', LAB / 'lab_small.pth', '--json')
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['architecture'] == {'channels': 8, 'layers': [1, 1, 2, 1], 'norm': 'global', 'source': 'inferred from the tensor shapes'}
    assert (d['ema'], d['epoch'], d['config'], d['threshold'], d['sha256']) == (True, 2, None, None, sha)
    assert d['metrics'] == {'valid_loss': pytest.approx(0.6949, abs=1e-4)} and d['parameters'] > 0


@needs_lab
def test_predict_with_the_lab_checkpoint(tmp_path):
    r = run_maskgen('predict', LAB / 'input.png', '-o', tmp_path, '--weights', LAB / 'lab_small.pth', '--quiet')
    assert r.returncode == 0 and '1 masked' in r.stdout, r.stderr
    m = np.asarray(Image.open(tmp_path / 'input_mask.png'))
    assert m.shape == (96, 128) and set(np.unique(m)) <= {0, 255}


def test_info_on_safetensors_run_folder_and_onnx(tmp_path):
    from maskgen.checkpoint import save_safetensors
    from maskgen.model import Net
    from maskgen.export import export_onnx
    run = tmp_path / 'run'
    cfg = {'channels': 8, 'layers': [1, 1, 1, 1], 'norm': 'global', 'lr': 0.002, 'epochs': 9}
    save_safetensors(Net(8, {'layers': [1, 1, 1, 1]}), run / 'best.safetensors', config=cfg, threshold=0.35,
                     metrics={'val_dice': 0.81}, provenance={'trained_with': 'maskgen test', 'epoch': 7}, license='Apache-2.0')
    (run / 'report.json').write_text(json.dumps({'status': 'finished', 'epochs_finished': 9, 'best_epoch': 7, 'threshold': 0.35}))
    r = run_maskgen('info', run / 'best.safetensors', '--json')
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['format'] == 'safetensors' and d['config']['lr'] == 0.002 and d['architecture']['layers'] == [1, 1, 1, 1]
    assert (d['threshold'], d['threshold_source'], d['epoch'], d['metrics']) == (0.35, 'checkpoint', 7, {'val_dice': 0.81})
    assert d['provenance']['trained_with'] == 'maskgen test' and d['metadata']['license'] == 'Apache-2.0'
    r = run_maskgen('info', run)   # the run folder: its best checkpoint and its report.json
    assert r.returncode == 0, r.stderr
    assert 'best.safetensors' in r.stdout and 'status=finished' in r.stdout and 'threshold: 0.35 (calibrated' in r.stdout
    export_onnx(run / 'best.safetensors', tmp_path / 'model.onnx')
    r = run_maskgen('info', tmp_path / 'model.onnx', '--json')
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d['format'], d['threshold'], d['epoch']) == ('onnx', 0.35, 7)
    assert d['architecture']['channels'] == 8 and d['metrics'] == {'val_dice': 0.81} and len(d['sha256']) == 64


@pytest.mark.parametrize('name,content,message', [
    ('notes.pth', 'my notes\n', 'notes.pth is not a model checkpoint: it is text'),
    ('image.png', None, 'image.png is not a model checkpoint'),
    ('broken.onnx', 'not onnx', 'Cannot load ONNX model'),
    ('empty_run', 'folder', 'empty_run has no best.safetensors'),
    ('missing.pth', 'nothing', 'missing.pth does not exist'),
])
def test_info_on_what_is_not_a_checkpoint(tmp_path, name, content, message):
    p = tmp_path / name
    if content == 'folder': p.mkdir()
    elif content is None: Image.fromarray(np.zeros((8, 8), np.uint8)).save(p)
    elif content != 'nothing': p.write_text(content)
    r = run_maskgen('info', p)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and 'Traceback' not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith('maskgen info: error: ') and message in lines[0] and name in lines[0]


def test_info_without_a_path_describes_the_install():
    r = run_maskgen('info')
    assert r.returncode == 0 and 'torch' in r.stdout and 'default_model' in r.stdout
    for flag in ('--json', '--json-output'):   # the old flag still works
        r = run_maskgen('info', flag)
        assert r.returncode == 0 and 'default_model' in json.loads(r.stdout)
