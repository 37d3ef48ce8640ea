"`maskgen export-onnx` as a deployer runs it: a checkpoint in, an ONNX file with its metadata out."
import json
import numpy as np
from conftest import run_maskgen


def test_export_onnx_cli(tmp_path, tiny_weights):
    import onnxruntime as ort
    out = tmp_path / 'deploy' / 'model.onnx'
    r = run_maskgen('export-onnx', '--weights', tiny_weights, '-o', out, '--quantize')
    assert r.returncode == 0, r.stderr
    assert 'wrote' in r.stdout and 'int8' in r.stdout
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta['format'] == 'maskgen' and json.loads(meta['threshold']) == 0.5
    assert json.loads(meta['config'])['layers'] == [1, 1, 1, 1] and meta['opset'] == '17'
    assert 'x/127.5-1 for 8-bit' in meta['normalization'] and meta['source_checkpoint'] == tiny_weights.name
    assert [i.name for i in sess.get_inputs()] == ['image']
    for shape in [(1, 3, 64, 64), (2, 3, 96, 160)]:   # free batch, height and width
        y = sess.run(None, {'image': np.zeros(shape, np.float32)})[0]
        assert y.shape == (shape[0], 1) + shape[2:] and np.isfinite(y).all()
    q = ort.InferenceSession(str(tmp_path / 'deploy' / 'model.int8.onnx'), providers=['CPUExecutionProvider'])
    assert 'quantization' in q.get_modelmeta().custom_metadata_map
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith('.tmp')]


def test_export_onnx_cli_errors(tmp_path):
    r = run_maskgen('export-onnx', '--weights', tmp_path / 'missing.pth', '-o', tmp_path / 'm.onnx')
    assert r.returncode == 2 and 'missing.pth does not exist' in r.stderr
    (tmp_path / 'm.onnx').write_bytes(b'x')
    r = run_maskgen('export-onnx', '--weights', tmp_path / 'm.onnx', '-o', tmp_path / 'n.onnx')
    assert r.returncode == 2 and 'already an ONNX model' in r.stderr
    r = run_maskgen('export-onnx', '--help')
    assert r.returncode == 0 and '--quantize' in r.stdout and '--opset' in r.stdout
