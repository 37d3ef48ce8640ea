"Reading and writing under hostile conditions: concurrent writers, huge and odd image files, broken paths (maskgen.io, maskgen.files)."
import os, struct, subprocess, sys, textwrap, zlib
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
import maskgen.io as mio
import maskgen.files as mfiles
from maskgen.io import (read_image, image_shape, remove_stale_temp_files, mask_file_ok, mask_file_problem,
                        save_mask, ImageTooLargeError)

ROOT = Path(__file__).resolve().parent.parent


def run_python(code, *args, timeout=120, env=None):
    "Run `code` in a fresh interpreter (the repository importable), return the CompletedProcess."
    e = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), **(env or {})}
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e)


# ---- concurrent writers (hardening item 3) ----

WRITER_A = """
    import sys, time
    from pathlib import Path
    from maskgen.io import atomic_write
    folder = Path(sys.argv[1])
    def slow(f):
        f.write(b'A' * 1000)
        (folder / 'A_mid').touch()                  # the temporary file exists now, half written
        deadline = time.time() + 60
        while not (folder / 'B_done').exists():     # wait until B has cleaned up the folder
            if time.time() > deadline: raise TimeoutError('B never finished')
            time.sleep(0.01)
        f.write(b'A' * 1000)
    atomic_write(folder / 'a.png', slow)
"""

CLEANER_B = """
    import sys, time
    from pathlib import Path
    from maskgen.io import remove_stale_temp_files, atomic_write
    folder, how = Path(sys.argv[1]), sys.argv[2]
    deadline = time.time() + 60
    while not (folder / 'A_mid').exists():
        if time.time() > deadline: raise TimeoutError('A never started writing')
        time.sleep(0.01)
    if how == 'stale-only': removed = remove_stale_temp_files(folder, ['a.png'])    # what `maskgen predict` does at start-up
    else: removed = [p for p in folder.glob('.a.png.*.tmp') if not p.unlink()]     # the old start-up cleanup: every temporary file
    atomic_write(folder / 'b.png', lambda f: f.write(b'B' * 500))
    print(len(removed))
    (folder / 'B_done').touch()
"""


@pytest.mark.parametrize('how', ['stale-only', 'all-temporaries'])
def test_cleanup_never_removes_a_live_writers_temporary_file(tmp_path, how):
    "Process B starts (and cleans the folder) while process A is half way through writing a mask there."
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    a = subprocess.Popen([sys.executable, '-c', textwrap.dedent(WRITER_A), str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([sys.executable, '-c', textwrap.dedent(CLEANER_B), str(tmp_path), how], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b_out, b_err = b.communicate(timeout=120)
    _, a_err = a.communicate(timeout=120)
    assert b.returncode == 0, b_err
    assert (tmp_path / 'b.png').read_bytes() == b'B' * 500
    if how == 'stale-only':
        assert a.returncode == 0, a_err
        assert b_out.split() == ['0'], "B removed A's live temporary file"
        assert (tmp_path / 'a.png').read_bytes() == b'A' * 2000
    else:   # the control: deleting every temporary file at start-up loses A's mask, which is what the test must catch
        assert a.returncode != 0 and 'FileNotFoundError' in a_err
        assert not (tmp_path / 'a.png').exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')]


STRESS_WRITER = """
    import sys, time
    from pathlib import Path
    from maskgen.io import atomic_write, remove_stale_temp_files
    folder, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    def chunks(content):
        def write(f):
            for i in range(0, len(content), len(content) // 4):
                f.write(content[i:i + len(content) // 4]); f.flush(); time.sleep(0.002)
        return write
    seen = 0
    for i in range(n):
        seen += sum(1 for p in folder.iterdir() if p.name.endswith('.tmp'))
        remove_stale_temp_files(folder)                       # every start-up and every image: must never hurt the other writer
        atomic_write(folder / f'{tag}{i}.png', chunks((tag * 4000).encode()))
        atomic_write(folder / 'shared.png', chunks((tag * 8000).encode()))   # both write this one
    print(seen)
"""


def test_two_concurrent_writers_lose_nothing(tmp_path):
    n = 40
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    procs = [subprocess.Popen([sys.executable, '-c', textwrap.dedent(STRESS_WRITER), str(tmp_path), tag, str(n)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in 'xy']
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results): assert p.returncode == 0, err
    for tag in 'xy':
        for i in range(n): assert (tmp_path / f'{tag}{i}.png').read_bytes() == (tag * 4000).encode()
    assert (tmp_path / 'shared.png').read_bytes() in ((b'x' * 8000), (b'y' * 8000))
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')]


def test_temporary_names_are_unique_and_say_their_writer(tmp_path):
    names = {mfiles._temp_path(tmp_path / 'm.png').name for _ in range(1000)}
    assert len(names) == 1000
    m = mfiles._TEMP_NAME.fullmatch(names.pop())
    assert m['name'] == 'm.png' and int(m['pid']) == os.getpid() and m['host'] == mfiles._HOST_TAG


def test_stale_temporary_files_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = [f'.m.png.{dead_pid}.{mfiles._HOST_TAG}.00000001.tmp', '.old.png.0a1b2c3d.tmp']
    live = [f'.m.png.{os.getpid()}.{mfiles._HOST_TAG}.00000002.tmp', '.m.png.99.ffffffff.00000003.tmp',   # ours; another host's
            '.notes.txt.tmp', 'm.png']                                                                 # not ours at all
    for n in stale + live: (tmp_path / n).write_bytes(b'x')
    os.utime(tmp_path / stale[1], (0, 0))
    assert remove_stale_temp_files(tmp_path) == sorted(tmp_path / n for n in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(live)
    assert remove_stale_temp_files(tmp_path, ['other.png'], max_age_s=0) == []       # only the names asked about
    assert len(remove_stale_temp_files(tmp_path, [tmp_path / 'm.png'], max_age_s=0)) == 2


# ---- a cheap check of an existing mask (hardening item 4 support) ----

def test_mask_file_ok(tmp_path):
    m = np.zeros((32, 48), np.uint8); m[4:9, 5:20] = 255
    save_mask(m, tmp_path / 'good.png'); save_mask(m, tmp_path / 'good.tif')
    (tmp_path / 'zero.png').write_bytes(b'')
    (tmp_path / 'trunc.png').write_bytes((tmp_path / 'good.png').read_bytes()[:-20])
    (tmp_path / 'trunc.tif').write_bytes((tmp_path / 'good.tif').read_bytes()[:-40])
    (tmp_path / 'text.png').write_text('hello')
    (tmp_path / 'dir.png').mkdir()
    os.symlink('loop.png', tmp_path / 'loop.png')
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / 'rgb.png')
    assert mask_file_ok(tmp_path / 'good.png', (32, 48)) and mask_file_ok(tmp_path / 'good.tif', (32, 48, 3))
    expected = {'zero.png': 'is empty (0 bytes)', 'trunc.png': 'is truncated', 'trunc.tif': 'cannot be decoded',
                'text.png': 'cannot be decoded', 'dir.png': 'is a folder', 'loop.png': 'is a symbolic link loop',
                'missing.png': 'does not exist', 'rgb.png': 'is not a single-channel mask'}
    for name, problem in expected.items():
        assert not mask_file_ok(tmp_path / name, (32, 48)), name
        assert mask_file_problem(tmp_path / name, (32, 48)).startswith(problem), (name, mask_file_problem(tmp_path / name))
    assert mask_file_problem(tmp_path / 'good.png', (48, 32)) == 'is 48x32 pixels, its image 32x48'


# ---- pixel limits and PIL's global (hardening item 5) ----

def write_blank_png(path, width, height):
    "A valid 1-bit PNG of `width` x `height` pixels, all black, written row block by row block (small on disk and in memory)."
    def chunk(tag, data): return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff)
    block = (b'\x00' + bytes((width + 7) // 8)) * 1000
    co = zlib.compressobj(1)
    idat = b''.join([co.compress(block[:len(block) // 1000 * min(1000, height - r)]) for r in range(0, height, 1000)] + [co.flush()])
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0))
                     + chunk(b'IDAT', idat) + chunk(b'IEND', b''))
    return path


@pytest.fixture(scope='module')
def huge_png(tmp_path_factory):
    return write_blank_png(tmp_path_factory.mktemp('huge') / 'huge.png', 60000, 60000)


@pytest.mark.skipif(not Path('/proc/self/status').exists(), reason='measures peak memory with Linux /proc')
def test_huge_png_is_refused_from_its_header(huge_png):
    assert huge_png.stat().st_size < 5e6     # 3.6 gigapixels in a few megabytes
    r = run_python("""
        import sys
        from pathlib import Path
        from maskgen.io import read_image, ImageTooLargeError
        try: read_image(sys.argv[1])
        except ImageTooLargeError as e: print(e)
        # peak resident memory of this process since it started (VmHWM: unlike ru_maxrss, not inherited from pytest's fork)
        print(next(int(l.split()[1]) // 1024 for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:')))
    """, huge_png, env={'MASKGEN_MAX_PIXELS': '1e9'})
    assert r.returncode == 0, r.stderr
    *message, rss_mb = r.stdout.strip().splitlines()
    message = '\n'.join(message)
    assert 'huge.png is 60000x60000 pixels' in message and 'its limit is 1,000 megapixels (set by MASKGEN_MAX_PIXELS)' in message
    assert 'MASKGEN_MAX_PIXELS=3600000000' in message and 'tiled TIFF' in message
    assert int(rss_mb) < 500, f"refusing the image took {rss_mb} MB: it was decoded"


def test_default_limit_follows_the_available_memory(huge_png, monkeypatch):
    monkeypatch.delenv('MASKGEN_MAX_PIXELS', raising=False)
    monkeypatch.setattr(mio, 'available_memory', lambda: 8 << 30)
    assert mio.max_image_pixels() == (8 << 30) // mio.BYTES_PER_PIXEL
    with pytest.raises(ImageTooLargeError, match=r'8\.0 GiB of available memory'): read_image(huge_png)
    assert image_shape(huge_png) == (60000, 60000)      # the header alone is fine
    monkeypatch.setattr(mio, 'available_memory', lambda: None)
    assert mio.max_image_pixels() == mio.FALLBACK_MAX_PIXELS


def test_importing_and_reading_leaves_pil_limit_alone(tmp_path):
    Image.new('L', (12000, 8000)).save(tmp_path / 'large.png')    # 96 Mpx: over Pillow's default warning limit of 89 Mpx
    r = run_python("""
        import sys, warnings
        from PIL import Image
        before = Image.MAX_IMAGE_PIXELS
        import maskgen, maskgen.io, maskgen.generator
        after_import = Image.MAX_IMAGE_PIXELS
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        shape = maskgen.io.read_image(sys.argv[1]).shape
        print(before, after_import, Image.MAX_IMAGE_PIXELS, shape)
    """, tmp_path / 'large.png')
    assert r.returncode == 0, r.stderr
    before, after_import, after_read, shape = r.stdout.strip().split(maxsplit=3)
    assert before == after_import == after_read
    assert int(before) < 12000 * 8000 and shape == '(8000, 12000, 3)'   # read past Pillow's limit without changing it


# ---- odd files (hardening items 6-9, lab issue 14 item 6) ----

@pytest.mark.parametrize('compression,tag', [('lzw', 'LZW'), ('zlib', 'ADOBE_DEFLATE'), ('zstd', 'ZSTD')])
def test_compressed_tiffs_read(tmp_path, compression, tag):
    import tifffile
    img = np.random.default_rng(0).integers(0, 4096, (70, 90), dtype=np.uint16)
    tifffile.imwrite(tmp_path / 'c.tif', img, compression=compression)
    with tifffile.TiffFile(tmp_path / 'c.tif') as tif: assert tif.pages[0].compression.name == tag
    np.testing.assert_array_equal(read_image(tmp_path / 'c.tif')[..., 0], img)


def test_16bit_rgb_png_reads_at_full_depth(tmp_path):
    import imagecodecs
    rgb = np.random.default_rng(1).integers(0, 4096, (33, 47, 3), dtype=np.uint16)
    (tmp_path / 'ic.png').write_bytes(imagecodecs.png_encode(rgb))
    np.testing.assert_array_equal(read_image(tmp_path / 'ic.png'), rgb)
    cv2 = pytest.importorskip('cv2')     # a second, independent encoder
    cv2.imwrite(str(tmp_path / 'cv.png'), rgb[..., ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / 'cv.png'), rgb)
    assert np.asarray(Image.open(tmp_path / 'cv.png')).max() < 16       # what Pillow alone would give


def test_exif_orientation_gives_the_displayed_mask(tmp_path, tiny_weights):
    from PIL import ImageOps
    from maskgen.generator import MaskGenerator
    stored = np.zeros((40, 64, 3), np.uint8); stored[:, :8] = 255     # a bright band on the left, as stored
    exif = Image.Exif(); exif[0x0112] = 6                               # displayed turned 90° clockwise: the band on top
    Image.fromarray(stored).save(tmp_path / 'photo.jpg', exif=exif, quality=98)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / 'photo.jpg')))
    img = read_image(tmp_path / 'photo.jpg')
    assert img.shape == (64, 40, 3) and (img == shown).all()
    assert img[:8].mean() > 200 and img[8:].mean() < 30
    gen = MaskGenerator(tiny_weights, device='cpu')
    mask = gen.generate_and_save(tmp_path / 'photo.jpg', tmp_path / 'photo_mask.png')
    assert mask.size == (40, 64) and Image.open(tmp_path / 'photo_mask.png').size == (40, 64)
    assert image_shape(tmp_path / 'photo.jpg') == (64, 40)


def test_nan_and_inf_give_a_finite_probability_map(tmp_path, tiny_weights):
    import tifffile
    from maskgen.generator import MaskGenerator
    img = np.random.default_rng(2).random((128, 128)).astype(np.float32)
    img[5, 5], img[60, 70], img[100, 3] = np.nan, np.inf, -np.inf
    tifffile.imwrite(tmp_path / 'ratio.tif', img)
    gen = MaskGenerator(tiny_weights, device='cpu')
    with pytest.warns(UserWarning, match=r'has 3 pixels that are not a number \(NaN or ±inf\) out of 16,384'):
        prob = gen.generate(tmp_path / 'ratio.tif', return_prob=True)
    assert np.isfinite(prob).all() and 0 <= prob.min() and prob.max() <= 1
    with pytest.warns(UserWarning, match='has 3 pixels'): mask = np.asarray(gen.generate(tmp_path / 'ratio.tif', threshold=float(np.median(prob))))
    assert 0.3 < (mask > 0).mean() < 0.7     # not blanked


def test_symlink_loop_is_named(tmp_path, tiny_weights):
    from maskgen.generator import MaskGenerator
    os.symlink(tmp_path / 'b.png', tmp_path / 'a.png'); os.symlink(tmp_path / 'a.png', tmp_path / 'b.png')
    with pytest.raises(FileNotFoundError, match='a.png is a symbolic link loop'): read_image(tmp_path / 'a.png')
    with pytest.raises(FileNotFoundError, match='a.png is a symbolic link loop'): MaskGenerator(tiny_weights, device='cpu').generate(tmp_path / 'a.png')
    with pytest.raises(FileNotFoundError, match='symbolic link loop'): mio.list_images([tmp_path / 'a.png'])
