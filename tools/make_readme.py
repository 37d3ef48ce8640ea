"""Write README.md from nbs/index.ipynb without Quarto: markdown cells as they are, code cells as
```python blocks with their stored outputs; `#| hide` cells and `#|` directives are left out. Relative links to docs
pages (`tutorials/quick_start.html`), which work on the docs site, become links to the notebooks they are made from
(`nbs/tutorials/quick_start.ipynb`), since README.md is read on GitHub, beside no such page, and the lab's GitHub Pages
site is not published yet: every README link then points at a file that exists (tests/test_project.py checks).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md differs from what the notebook gives
"""
import json, re, sys
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


_re_page_link = re.compile(r'\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|/|#)([^)\s]+)\.html(#[^)\s]*)?\)')

def page_notebooks(nbs=ROOT / 'nbs')->dict:
    "Docs page path without `.html` (as Quarto names it: the notebook's path, number prefix dropped) -> the notebook's path in the repo."
    pages = {}
    for nb in nbs.rglob('*.ipynb'):
        if '_proc' in nb.parts or '.ipynb_checkpoints' in nb.parts: continue
        rel = nb.relative_to(nbs).with_suffix('')
        pages[str(rel.parent / re.sub(r'^\d+[a-z]?_', '', rel.name)).removeprefix('./')] = nb.relative_to(ROOT).as_posix()
    return pages


def notebook_links(md:str, pages:dict)->str:
    "Markdown links to relative `.html` docs pages in `md` as links to the notebooks they are built from."
    def sub(m):
        if m.group(1) not in pages: sys.exit(f"nbs/index.ipynb links to {m.group(1)}.html, but no notebook makes that page")
        return f"]({pages[m.group(1)]})"
    return _re_page_link.sub(sub, md)


def readme_from_notebook(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts, pages = [], page_notebooks()
    for cell in nb['cells']:
        text = cell_text(cell)
        lines = text.splitlines()
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.replace(' ', '') in ('#|hide', '#|include:false', '#|echo:false') for d in directives) and cell['cell_type'] == 'code':
            continue
        if cell['cell_type'] == 'markdown': parts.append(notebook_links(text.strip(), pages))
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
