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
    code = ("import sys, maskgen; heavy = [m for m in ('torch', 'fastai', 'fiftyone', 'ipywidgets', 'matplotlib', 'onnxruntime') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]'
    code = ("import sys; from maskgen import MaskGenerator; heavy = [m for m in ('fastai', 'fiftyone', 'ipywidgets', 'matplotlib', "
            "'onnxruntime', 'skimage') if m in sys.modules]; print(heavy)")
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
