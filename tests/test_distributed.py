"`maskgen.distributed` on a real 2-process LocalCluster: folders and a large TIFF equal the single-process masks, a killed worker loses no finished mask, bad inputs fail per image."
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import run_maskgen

pytest.importorskip('distributed')
pytest.importorskip('zarr')
import tifffile

TILES = {'name': 'tile', 'tile_size': 128, 'overlap': 32}


@pytest.fixture(scope='module')
def client():
    "A LocalCluster of two worker processes, one thread each, shared by the tests of this file."
    from maskgen.distributed import dask_client
    with dask_client(workers=2, quiet=True) as c: yield c


@pytest.fixture(scope='module')
def gen(tiny_weights):
    "The single-process generator, on one thread like each Dask worker (threads fight over a busy CI machine's two cores)."
    import torch
    from maskgen.generator import MaskGenerator
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MaskGenerator(tiny_weights, device='cpu')
    torch.set_num_threads(threads)


def frames(folder, n=6, size=(96, 128)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n): Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(folder / f'f{i:02d}.png')
    tifffile.imwrite(folder / 'g16.tif', rng.integers(100, 3000, size, dtype=np.uint16))
    return folder


def test_folder_on_two_workers_equals_single_process(tmp_path, client, gen, tiny_weights):
    from maskgen.distributed import mask_images, generator_loads
    src = frames(tmp_path / 'in')
    report = mask_images(src, tmp_path / 'out', weights=tiny_weights, device='cpu', client=client, strategy='whole', threshold='auto')
    assert (report['masked'], report['skipped'], report['failed']) == (7, 0, [])
    for f in sorted(src.iterdir()):
        got = np.asarray(Image.open(tmp_path / 'out' / f'{f.stem}_mask.png'))
        np.testing.assert_array_equal(got, np.asarray(gen.generate(f, 'whole', threshold='auto')), err_msg=f.name)
    loads = client.run(generator_loads)   # the model was loaded once per worker, not once per task
    assert len(loads) == 2 and all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1, loads
    again = mask_images(src, tmp_path / 'out', weights=tiny_weights, device='cpu', client=client, strategy='whole')
    assert (again['masked'], again['skipped']) == (0, 7)


def test_large_tiff_in_blocks_equals_single_process(tmp_path, client, gen, tiny_weights):
    "A 2k TIFF shared among the workers in blocks: the mask is the single-process tiled mask (lazy = in-memory is tested in nbs/07 and 08)."
    from maskgen.distributed import mask_huge_image
    rng = np.random.default_rng(2)
    img = (rng.normal(1500, 400, (2048, 1536)).clip(0, 65535)).astype(np.uint16)
    tifffile.imwrite(tmp_path / 'large.tif', img, tile=(256, 256), compression='zlib')
    spec = dict(weights=str(tiny_weights), device='cpu')
    tiles = {'name': 'tile', 'tile_size': 256, 'overlap': 64}
    out = mask_huge_image(client, tmp_path / 'large.tif', tmp_path / 'large_mask.tif', spec, tiles, block_size=1024)
    blocks = tifffile.imread(out)
    single = np.asarray(gen.generate(img, tiles))                  # in memory, one process
    fg = lambda a: a > 0
    dice = 2 * (fg(blocks) & fg(single)).sum() / max(1, fg(blocks).sum() + fg(single).sum())
    assert dice >= 0.9999, dice
    assert (blocks != single).mean() < 1e-5        # identical but for float noise across worker processes, if any
    assert not any(p.name.startswith('.') for p in tmp_path.iterdir())   # the blocks' store is gone


def test_block_job_resumes_after_a_crash(tmp_path, client, gen, tiny_weights, monkeypatch):
    "Blocks marked done in an earlier run are not redone; the rest are, and the mask is whole."
    import zarr
    from maskgen import distributed
    img = np.random.default_rng(3).integers(0, 256, (512, 480, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / 'slide.tif', img, tile=(128, 128))
    spec = dict(weights=str(tiny_weights), device='cpu')
    real_save = distributed.save_strips
    def crash(*a, **k): raise OSError('simulated crash before the mask is written')
    monkeypatch.setattr(distributed, 'save_strips', crash)
    with pytest.raises(OSError, match='simulated crash'):
        distributed.mask_huge_image(client, tmp_path / 'slide.tif', tmp_path / 'slide_mask.tif', spec, TILES, block_size=256)
    store = tmp_path / '.slide_mask.tif.blocks.zarr'
    assert len(list((store / 'maskgen-done').iterdir())) == 4 and not (tmp_path / 'slide_mask.tif').exists()
    (store / 'maskgen-done' / '3').unlink()                       # as if the run died before block 3 was done
    zarr.open_array(str(store), mode='r+')[256:512, 256:512] = 7  # and its chunk were half written
    monkeypatch.setattr(distributed, 'save_strips', real_save)
    distributed.mask_huge_image(client, tmp_path / 'slide.tif', tmp_path / 'slide_mask.tif', spec, TILES, block_size=256)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / 'slide_mask.tif'), np.asarray(gen.generate(img, TILES)))


def test_corrupt_image_and_unwritable_output_fail_per_image(tmp_path, client, tiny_weights):
    from maskgen.distributed import run_jobs
    src = frames(tmp_path / 'in', n=2)
    (src / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    out = tmp_path / 'out'
    jobs = [(src / 'f00.png', out / 'f00_mask.png', None), (src / 'corrupt.png', out / 'corrupt_mask.png', None),
            (src / 'f01.png', blocker / 'sub' / 'f01_mask.png', None), (src / 'g16.tif', out / 'g16_mask.png', None)]
    report = run_jobs(jobs, dict(weights=str(tiny_weights), device='cpu'), dict(strategy='whole'), client=client)
    errors = {Path(i).name: e for i, e in report['failed']}
    assert report['masked'] == 2 and set(errors) == {'corrupt.png', 'f01.png'}, report
    assert 'Cannot read image' in errors['corrupt.png'] and 'corrupt.png' in errors['corrupt.png']
    assert 'Cannot create output folder' in errors['f01.png']
    if os.geteuid() != 0:   # permissions do not bind root
        ro = tmp_path / 'readonly'
        ro.mkdir(); ro.chmod(0o555)
        try:
            r = run_jobs([(src / 'f00.png', ro / 'm.png', None)], dict(weights=str(tiny_weights), device='cpu'), {}, client=client)
            assert 'not writable' in r['failed'][0][1]
        finally: ro.chmod(0o755)


def _workers_of(pid):
    "The Dask worker processes (multiprocessing spawn children) of process `pid`."
    import psutil
    return [p for p in psutil.Process(pid).children(recursive=True) if 'spawn_main' in ' '.join(p.cmdline())]


def _wait_for(cond, timeout=240):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise TimeoutError('waited too long')
        time.sleep(0.2)


def test_cli_killed_worker_loses_no_mask_and_rerun_completes(tmp_path, tiny_weights):
    "`maskgen predict --workers 2`: a worker killed mid-run is replaced and the run finishes; a killed run resumes where it stopped."
    src = frames(tmp_path / 'in', n=20, size=(256, 256))
    out = tmp_path / 'out'
    cmd = [sys.executable, '-c', 'import sys; from maskgen.cli import main; sys.exit(main())', 'predict', str(src), '-o', str(out),
           '--weights', str(tiny_weights), '--device', 'cpu', '--strategy', 'whole', '--workers', '2', '--quiet']
    done = lambda: sorted(p for p in out.glob('*_mask.png')) if out.exists() else []
    # 1. kill one worker mid-run: the nanny starts another, its task runs again, the run completes
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: len(done()) >= 2 or proc.poll() is not None)
        before = {p.name: p.read_bytes() for p in done()}
        workers = _workers_of(proc.pid)
        if proc.poll() is None and workers: workers[0].kill()
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    import re
    m = re.search(r'(\d+) masked, (\d+) skipped \(exist; --overwrite to redo\), 0 failed', stdout)
    assert m and int(m[1]) + int(m[2]) == 21 and len(done()) == 21, stdout   # a task redone after the kill may find its mask written
    assert all((out / n).read_bytes() == b for n, b in before.items())
    # 2. kill the whole run mid-way: every mask on disk is whole, and the rerun does the rest
    for p in done(): p.unlink()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: len(done()) >= 3 or proc.poll() is not None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    kept = {p.name: p.read_bytes() for p in done()}
    from maskgen.io import mask_file_problem
    assert all(mask_file_problem(out / n, (256, 256)) is None for n in kept)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    assert f'{21 - len(kept)} masked, {len(kept)} skipped (exist; --overwrite to redo), 0 failed' in r.stdout, (len(kept), r.stdout)
    assert len(done()) == 21 and all((out / n).read_bytes() == b for n, b in kept.items())


def test_cli_cluster_options_are_checked(tmp_path, tiny_weights):
    src = frames(tmp_path / 'in', n=1)
    r = run_maskgen('predict', src, '-o', tmp_path / 'o', '--weights', tiny_weights, '--workers', '0')
    assert r.returncode == 2 and '--workers 0' in r.stderr
    r = run_maskgen('predict', src, '-o', tmp_path / 'o', '--weights', tiny_weights, '--workers', '2', '--scheduler', 'tcp://127.0.0.1:1')
    assert r.returncode == 2 and 'not both' in r.stderr
