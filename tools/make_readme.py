"""Write README.md from nbs/index.ipynb without Quarto: markdown cells as they are, code cells as
```python blocks with their stored outputs; `#| hide` cells and `#|` directives are left out. Relative links to docs
pages (`tutorials/quick_start.html`), which work on the docs site, become links to the published site (settings.ini's
doc_host and doc_baseurl), since README.md is read on GitHub, beside no such page.

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md differs from what the notebook gives
"""
import configparser, json, re, sys
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


def site_url()->str:
    "The published docs site, from settings.ini: doc_host + doc_baseurl, ending in '/'."
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    d = cfg['DEFAULT']
    return (d.get('doc_host', '') + d.get('doc_baseurl', '')).rstrip('/') + '/'


_re_page_link = re.compile(r'\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|/|#)([^)\s]+\.html(?:#[^)\s]*)?)\)')

def absolute_links(md:str, site:str)->str:
    "Markdown links to relative `.html` pages in `md` as links to those pages on `site`."
    return _re_page_link.sub(lambda m: f"]({site}{m.group(1)})", md)


def readme_from_notebook(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts, site = [], site_url()
    for cell in nb['cells']:
        text = cell_text(cell)
        lines = text.splitlines()
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.replace(' ', '') in ('#|hide', '#|include:false', '#|echo:false') for d in directives) and cell['cell_type'] == 'code':
            continue
        if cell['cell_type'] == 'markdown': parts.append(absolute_links(text.strip(), site))
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
