"""Write README.md from nbs/index.ipynb without Quarto: markdown cells as they are, code cells as
```python blocks with their stored outputs; `#| hide` cells and `#|` directives are left out.

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md differs from what the notebook gives
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cell_text(cell):
    src = cell['source']
    return ''.join(src) if isinstance(src, list) else src


def output_text(out):
    if out.get('output_type') == 'stream': return ''.join(out.get('text', ''))
    data = out.get('data', {})
    if 'text/markdown' in data: return None
    t = data.get('text/plain')
    return ''.join(t) if isinstance(t, list) else t


def readme_from_notebook(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        text = cell_text(cell)
        lines = text.splitlines()
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.replace(' ', '') in ('#|hide', '#|include:false', '#|echo:false') for d in directives) and cell['cell_type'] == 'code':
            continue
        if cell['cell_type'] == 'markdown': parts.append(text.strip())
        elif cell['cell_type'] == 'code':
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if code: parts.append(f"```python\n{code}\n```")
            for out in cell.get('outputs', []):
                t = output_text(out)
                if t and t.strip(): parts.append(f"```\n{t.rstrip()}\n```")
    text = '\n\n'.join(p for p in parts if p) + '\n'
    return text.replace('\n# ', '\n# ', 1)


if __name__ == '__main__':
    text = readme_from_notebook()
    readme = ROOT / 'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run python tools/make_readme.py")
        print("README.md is up to date")
    else:
        readme.write_text(text, encoding='utf-8')
        print(f"wrote {readme}")
