"The project's promises about itself: README set-up commands, CI, layout, a light import."
import re, subprocess, sys
from conftest import ROOT


def readme_commands():
    return re.findall(r"```bash\n(python3 -m venv .*?)\n```", (ROOT / 'README.md').read_text())


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    cmds = readme_commands()
    assert len(cmds) == 2, cmds
    install_and_run, install_and_test = cmds
    assert 'maskgen demo' in install_and_run and '[dev]' in install_and_test
    ci = (ROOT / '.ci' / 'run').read_text()
    assert install_and_test in ci.splitlines()


def test_layout():
    for p in ['nbs', 'maskgen', 'settings.ini', 'setup.py', 'tests', '.github/workflows/test.yaml',
              '.github/workflows/deploy.yaml', 'README.md', '_quarto.yml', '.ci/run', 'bench']:
        assert (ROOT / p).exists(), p
    link = ROOT / 'nbs' / '_quarto.yml'
    assert link.is_symlink() and link.resolve() == (ROOT / '_quarto.yml').resolve()


def test_import_is_light():
    code = ("import sys, maskgen; heavy = [m for m in ('torch', 'fastai', 'fiftyone', 'ipywidgets', 'matplotlib', 'onnxruntime', 'openvino') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]'
    code = ("import sys; from maskgen import MaskGenerator; heavy = [m for m in ('fastai', 'fiftyone', 'ipywidgets', 'matplotlib', "
            "'onnxruntime', 'openvino', 'skimage') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]'


def test_every_module_has_a_notebook():
    mods = {p.stem for p in (ROOT / 'maskgen').glob('*.py')} - {'__init__', '_modidx'}
    exported = set()
    for nb in (ROOT / 'nbs').rglob('*.ipynb'):
        m = re.search(r'#\|\s*default_exp\s+(\S+)', nb.read_text())
        if m: exported.add(m.group(1).replace('"', '').split('.')[-1])
    assert mods <= exported, mods - exported


LAB_REPO = 'https://github.com/Katsurado/bernlab_maskgen'


def readme_links()->list[str]:
    "Every link target in README.md: markdown links and bare URLs."
    text = (ROOT / 'README.md').read_text()
    targets = re.findall(r'\]\(([^)\s]+)\)', text)
    targets += [u.rstrip('.,;)`') for u in re.findall(r'(?<![(\w])https?://[^\s)`"]+', text)]
    return targets


def test_every_readme_link_exists():
    "Each README link is a file in this repository, or the lab's repository (its code, releases or Pages site)."
    allowed = (LAB_REPO + '/', LAB_REPO + '.git', 'https://katsurado.github.io/bernlab_maskgen/')
    bad = []
    for t in readme_links():
        if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', t):
            if not (t == LAB_REPO or t.startswith(allowed)): bad.append(t)
        elif not (ROOT / t.split('#')[0]).exists(): bad.append(t)
    assert readme_links(), "no links found: the check would pass vacuously"
    assert not bad, f"README links that lead nowhere: {bad}"


def test_settings_name_the_lab_repository():
    import configparser
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / 'settings.ini')
    d = cfg['DEFAULT']
    assert d['git_url'] == LAB_REPO and d['user'] == 'Katsurado'
    assert d['doc_host'] + d['doc_baseurl'] == 'https://katsurado.github.io/bernlab_maskgen'
    assert d['min_python'] == '3.10'


# ---- one direction through the package (issue 15) ----
class NotebookNumber(str):
    "A notebook's number as its file name gives it ('07', '07a'), ordered as the file names sort: 07 < 07a < 07b < 08."
    def key(self): return (int(self.rstrip('abcdefghijklmnopqrstuvwxyz')), self.lstrip('0123456789'))
    def __lt__(self, o): return self.key() < NotebookNumber(o).key()
    def __ge__(self, o): return not self < o


def module_numbers(pkg=ROOT / 'maskgen')->dict:
    "Module name -> the number of the notebook it is exported from (read from the 'File to edit' header nbdev writes)."
    nums = {}
    for py in pkg.glob('*.py'):
        m = re.search(r'File to edit: \.\./nbs/(\d+[a-z]?)_\w+\.ipynb', py.read_text())
        if m: nums[py.stem] = NotebookNumber(m.group(1))
    return nums


def package_imports(py)->list:
    "(line, module, imported names) of every import of a maskgen module in `py`, at any depth: lazy imports in functions too."
    import ast
    out = []
    for node in ast.walk(ast.parse(py.read_text())):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:   # from .x import y / from . import x
                mod = node.module.split('.')[0] if node.module else None
            elif node.module == 'maskgen' or (node.module or '').startswith('maskgen.'):
                parts = node.module.split('.')
                mod = parts[1] if len(parts) > 1 else None
            else: continue
            if mod: out.append((node.lineno, mod, names))
            else: out += [(node.lineno, n, []) for n in names]   # from maskgen import io: the module itself
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split('.')[1], []) for a in node.names if a.name.startswith('maskgen.')]
    return out


def import_direction_problems(pkg=ROOT / 'maskgen')->list:
    "One line per import that does not point to a lower-numbered notebook's module, imports maskgen.cli, or takes a private name."
    nums, bad = module_numbers(pkg), []
    for mod, n in sorted(nums.items(), key=lambda x: x[1].key()):
        for line, target, names in sorted(package_imports(pkg / f"{mod}.py")):
            where = f"maskgen/{mod}.py:{line} (nbs/{n})"
            if target == 'cli' and mod != 'cli':
                bad.append(f"{where} imports maskgen.cli: only the command line may, no library module")
            elif target in nums and target != mod and nums[target] >= n:
                bad.append(f"{where} imports maskgen.{target} (nbs/{nums[target]}): a module imports only lower-numbered ones")
            private = [x for x in names if x.startswith('_') and not x.startswith('__')]
            if target in nums and target != mod and private:
                bad.append(f"{where} imports the private {', '.join(private)} of maskgen.{target}")
    return bad


def test_imports_point_down_the_notebook_order():
    assert len(module_numbers()) >= 15
    problems = import_direction_problems()
    assert not problems, "imports against the notebook order:\n" + '\n'.join(problems)


def test_import_direction_check_finds_cycles(tmp_path):
    "The check itself: a lazy import of a higher module, an import of cli and a private name are each reported with file:line."
    def module(name, num, body):
        (tmp_path / f'{name}.py').write_text(f"# AUTOGENERATED! DO NOT EDIT! File to edit: ../nbs/{num:02d}_{name}.ipynb.\n{body}")
    module('io', 0, "import os\n")
    module('generator', 1, "from .io import _hidden\ndef f():\n    from maskgen.export import x\n")
    module('export', 2, "from .generator import g\ndef h():\n    import maskgen.cli\n")
    module('cli', 3, "from .export import h\n")
    problems = import_direction_problems(tmp_path)
    assert problems == ["maskgen/generator.py:2 (nbs/01) imports the private _hidden of maskgen.io",
                        "maskgen/generator.py:4 (nbs/01) imports maskgen.export (nbs/02): a module imports only lower-numbered ones",
                        "maskgen/export.py:4 (nbs/02) imports maskgen.cli: only the command line may, no library module"], problems
    # a lettered notebook sits between its number and the next: 01a may import 01 and be imported by 02, not by 01
    (tmp_path / 'pixels.py').write_text("# AUTOGENERATED! DO NOT EDIT! File to edit: ../nbs/01a_pixels.ipynb.\nfrom .generator import g\n")
    (tmp_path / 'export.py').write_text("# AUTOGENERATED! DO NOT EDIT! File to edit: ../nbs/02_export.ipynb.\nfrom .pixels import p\n")
    (tmp_path / 'generator.py').write_text("# AUTOGENERATED! DO NOT EDIT! File to edit: ../nbs/01_generator.ipynb.\nfrom .pixels import p\n")
    assert import_direction_problems(tmp_path) == [
        "maskgen/generator.py:2 (nbs/01) imports maskgen.pixels (nbs/01a): a module imports only lower-numbered ones"]


# names `maskgen.io` exported before the file plumbing moved to `maskgen.files` (nbs/00): README, tutorials, lab cells and
# tests import them from maskgen.io, so they all stay there
IO_NAMES = ['IMAGE_SUFFIXES', 'BYTES_PER_PIXEL', 'FALLBACK_MAX_PIXELS', 'MAX_PIXELS_ENV', 'EXIF_ORIENTATION', 'MASK_SUFFIXES',
            'PROBABILITY_SUFFIXES', 'list_images', 'ImageReadError', 'ImageTooLargeError', 'ImagePlaneError', 'available_memory',
            'max_image_pixels', 'is_integer', 'read_image', 'image_shape', 'intensity_range', 'normalize_tile', 'atomic_write',
            'remove_stale_temp_files', 'check_output_suffix', 'save_mask', 'save_probability', 'mask_file_problem', 'mask_file_ok',
            'to_display', 'mask_overlay', 'error_colors', 'UsageError', 'read_json', 'write_json', 'write_jsonl']


def test_io_keeps_every_name_it_had():
    "Each public name of maskgen.io is still there and in its `__all__`; the ones that moved are the very objects of maskgen.files."
    import maskgen.io as mio, maskgen.files as mfiles
    assert [n for n in IO_NAMES if n not in mio.__all__ or not hasattr(mio, n)] == []
    moved = [n for n in mfiles.__all__ if n in IO_NAMES]
    assert len(moved) >= 13 and all(getattr(mio, n) is getattr(mfiles, n) for n in moved), moved
    out = subprocess.run([sys.executable, '-c', 'from maskgen.io import *; print(sorted(k for k in dir() if not k.startswith("_")))'],
                         capture_output=True, text=True, check=True).stdout
    assert set(IO_NAMES) <= set(eval(out))



def test_no_library_module_exits():
    "Commands return their status or raise; only `maskgen.cli.main` turns that into an exit status (issue 15, item 4)."
    exits = [f"maskgen/{p.name}:{i}: {line.strip()}" for p in sorted((ROOT / 'maskgen').glob('*.py')) if p.stem != 'cli'
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r'\b(sys\.exit|exit|quit)\(', line)]
    assert exits == [], exits
