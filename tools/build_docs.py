"""Build the docs site offline, without Quarto, into `_docs/`: a check that every page renders, and a site to read locally.

nbdev's own processors turn each notebook into the page Quarto would render (`nbdev.serve.proc_nbs` writes them to
`_proc/`: `#| hide` and `#| export` cells dropped, `show_doc` cells added and run, the H1 and `>` summary turned into
front matter). Each processed notebook then becomes one HTML page with nbconvert's `lab` template, at the path Quarto
gives it (front matter `output-file`: `01_io.ipynb` -> `io.html`, `tutorials/x.ipynb` -> `tutorials/x.html`):
title and description from the front matter, `#| include: false` cells dropped, `#| echo: false` inputs and
`#| output: false` outputs left out, `#|` lines stripped from code, stored outputs (text, tables, images) kept, links to
the published site or to other notebooks made relative, and a sidebar linking every page on every page. Nothing is
loaded from the internet (no require.js, MathJax or widget scripts). Other files under nbs/ (images/, ...) are copied.
`_docs/pages.json` lists the pages for `tests/test_docs_browser.py`. The page that masks images in the browser (`web/`)
is built into `_docs/in_browser/` by `web/build.py` (Node.js with npm; its npm packages come from web/package-lock.json).
The real site is built by Quarto on GitHub (`.github/workflows/deploy.yaml`), which builds the in-browser page the same way.

    python tools/build_docs.py                         # nbs/ -> _proc/ -> _docs/
    python tools/build_docs.py --nbs /tmp/nbscopy --dest /tmp/site
    python -m http.server -d _docs                     # then open http://localhost:8000
"""
import argparse, html, json, os, re, shutil, sys, tempfile, time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
SOURCE_STAMP = '.build_docs_source'   # in _proc/: which notebook folder the cached processed notebooks came from
CELL_KEYS = {'code': {'cell_type', 'execution_count', 'id', 'metadata', 'outputs', 'source'},
             'markdown': {'attachments', 'cell_type', 'id', 'metadata', 'source'},
             'raw': {'attachments', 'cell_type', 'id', 'metadata', 'source'}}
IMAGE_MIMES = ('image/png', 'image/jpeg', 'image/gif', 'image/svg+xml')

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block extra_css %}
<meta name="generator" content="maskgen tools/build_docs.py">
{%- if resources.page.description %}
<meta name="description" content="{{ resources.page.description | e }}">
{%- endif %}
<style type="text/css">
body.jp-Notebook { display: flex; align-items: flex-start; margin: 0; padding: 0; }
nav.docs-sidebar { position: sticky; top: 0; flex: 0 0 15rem; height: 100vh; overflow-y: auto; box-sizing: border-box;
  padding: 1.5rem 1rem; border-right: 1px solid #ddd; background: #f8f9fa; font: 14px/1.5 system-ui, sans-serif; }
nav.docs-sidebar .site-title { display: block; font-size: 1.25rem; font-weight: 600; margin-bottom: 1rem; color: #222; text-decoration: none; }
nav.docs-sidebar ul { list-style: none; margin: 0 0 1rem 0; padding: 0; }
nav.docs-sidebar li a { display: block; padding: 0.15rem 0.4rem; border-radius: 4px; color: #2a5db0; text-decoration: none; }
nav.docs-sidebar li a[aria-current="page"] { background: #e3ebf7; font-weight: 600; }
nav.docs-sidebar .section { margin: 0.5rem 0 0.25rem; font-weight: 600; color: #555; text-transform: capitalize; }
main.docs-page { flex: 1 1 auto; min-width: 0; max-width: 70rem; padding: 1.5rem 2rem; }
main.docs-page > header h1.title { margin-top: 0; }
main.docs-page > header p.description { font-size: 1.1rem; color: #555; }
</style>
{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.sidebar }}
<main class="docs-page">
<header>
<h1 class="title">{{ resources.page.title | e }}</h1>
{%- if resources.page.description %}
<p class="description">{{ resources.page.description | e }}</p>
{%- endif %}
</header>
{%- endblock body_header -%}
"""


def source_notebooks(nbs:Path)->list:
    "The notebooks nbdev renders under `nbs`: recursive, skipping files and folders that start with `_` or `.`."
    return sorted(p.relative_to(nbs) for p in nbs.rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))


def process_notebooks(nbs:Path, n_workers:int, force:bool)->Path:
    "Run nbdev's docs processors over `nbs` into `_proc/` (cached by modification time) and return that folder."
    from nbdev.config import get_config
    from nbdev.serve import proc_nbs
    proc = get_config().config_path / '_proc'
    stamp = proc / SOURCE_STAMP
    if not force and (not stamp.exists() or stamp.read_text() != str(nbs)): force = True   # cache from another folder
    try: proc_nbs(str(nbs), n_workers=n_workers, force=force)
    except Exception as e:
        cause = f"\n{type(e.__cause__).__name__}: {e.__cause__}" if e.__cause__ else ''
        hint = ("\nnbdev runs every cell with an import (and the exported cells) to render show_doc: a cell that mixes an "
                "import with code using earlier variables fails there. Move the import into the notebook's import cell."
                if 'NameError' in cause else '')
        sys.exit(f"nbdev's docs processing failed (Quarto's build on GitHub would fail the same way):\n{e}{cause}{hint}")
    stamp.write_text(str(nbs))
    return proc


def split_directives(source:str):
    "Leading `#| key: value` lines of a code cell as a dict, and the code without them."
    lines, direc = source.splitlines(True), {}
    i = 0
    while i < len(lines) and (not lines[i].strip() or re.match(r'\s*#\|', lines[i])):
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', lines[i])
        if m: direc[m.group(1)] = m.group(2).strip('"\'')
        i += 1
    return direc, ''.join(lines[i:]).strip('\n')


def front_matter(nb)->dict:
    "The YAML front matter of a processed notebook (its first raw cell), which is then removed from the cells."
    import yaml
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'raw':
            m = re.match(r'\s*---\s*\n(.*?)\n---\s*$', cell.source, flags=re.DOTALL)
            if m:
                del nb.cells[i]
                return yaml.safe_load(m.group(1)) or {}
        elif cell.cell_type != 'markdown' or cell.source.strip(): break
    return {}


def n_image_outputs(nb)->int:
    "How many stored outputs of the notebook are images (the browser test expects one to render on its page)."
    return sum(any(k in o.get('data', {}) for k in IMAGE_MIMES) for c in nb.cells if c.cell_type == 'code'
               for o in c.get('outputs', []))


_re_attr_link = re.compile(r'\[([^\]]*)\]\(([^)\s]*)\)\{([^}]*)\}')

def quarto_links(md:str)->str:
    "Pandoc's `[text](url){target=\"_blank\" ...}` (in nbdev's show_doc) as an HTML link, which plain markdown knows."
    return _re_attr_link.sub(lambda m: f'<a href="{html.escape(m.group(2))}" {m.group(3)}>{m.group(1)}</a>', md)


def prepare_notebook(path:Path):
    "Read a processed notebook and make it what the page shows: returns (notebook, front matter)."
    import nbformat
    raw = json.loads(path.read_text(encoding='utf-8'))
    cells = []
    for i, c in enumerate(raw.get('cells', [])):   # nbdev adds keys (`has_sd`, ...) that nbformat's schema rejects
        c = {k: v for k, v in c.items() if k in CELL_KEYS.get(c.get('cell_type'), ())}
        c.setdefault('metadata', {})
        if isinstance(c.get('source'), list): c['source'] = ''.join(c['source'])
        cells.append(c)
    for i, c in enumerate(cells): c['id'] = f'cell-{i}'
    raw['cells'] = cells
    raw.setdefault('metadata', {})
    raw.setdefault('nbformat', 4); raw['nbformat_minor'] = max(raw.get('nbformat_minor', 5), 5)
    nb = nbformat.reads(json.dumps(raw), as_version=4)   # joins multi-line strings in sources and outputs
    fm = front_matter(nb)
    keep = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            direc, code = split_directives(cell.source)
            if 'hide' in direc or direc.get('include', '').lower() == 'false': continue
            cell.source = code
            if direc.get('output', '').lower() == 'false': cell.outputs = []
            if direc.get('echo', '').lower() == 'false' or not code.strip():
                cell.metadata.setdefault('transient', {})['remove_source'] = True
            if not code.strip() and not cell.outputs: continue
        elif not cell.source.strip(): continue
        if cell.cell_type == 'markdown': cell.source = quarto_links(cell.source)
        for o in cell.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if isinstance(md, str): o.data['text/markdown'] = quarto_links(md)
        keep.append(cell)
    nb.cells = keep
    nbformat.validate(nb)
    return nb, fm


def relative_url(target:str, page:str)->str:
    "`target` (a path under the site root) as a link from `page` (another path under it)."
    return os.path.relpath(target, str(PurePosixPath(page).parent) or '.').replace(os.sep, '/')


def sidebar_html(pages:list, current:str, site_title:str)->str:
    "The sidebar: the index first, then the top-level pages, then one section per subfolder."
    items, section = [], None
    index = next((p for p in pages if p['page'] == 'index.html'), None)
    head = (f'<a class="site-title" href="{relative_url(index["page"], current)}">{html.escape(site_title)}</a>'
            if index else f'<span class="site-title">{html.escape(site_title)}</span>')
    items.append('<ul>')
    for p in pages:
        folder = str(PurePosixPath(p['page']).parent)
        if folder != '.' and folder != section:
            section = folder
            items.append(f'</ul><div class="section">{html.escape(folder)}</div><ul>')
        cur = ' aria-current="page"' if p['page'] == current else ''
        items.append(f'<li><a href="{relative_url(p["page"], current)}"{cur}>{html.escape(p["title"])}</a></li>')
    items.append('</ul>')
    return f'<nav class="docs-sidebar" aria-label="Pages">{head}{"".join(items)}</nav>'


def fix_links(body:str, page:str, out_of:dict, site_url:str)->str:
    "Links to the published site, or to a notebook, become relative links to the page built here."
    def repl(m):
        url = html.unescape(m.group(2))
        target, frag = (url.split('#', 1) + [''])[:2]
        if site_url and target.startswith(site_url): target = target[len(site_url):].lstrip('/') or 'index.html'
        elif re.match(r'^[a-z][a-z0-9+.-]*:|^/|^#', url): return m.group(0)
        else: target = str(PurePosixPath(page).parent / target) if target else ''
        target = os.path.normpath(target).replace(os.sep, '/') if target else ''
        if target.endswith('.ipynb') and target in out_of: target = out_of[target]
        if not target: return m.group(0)
        new = relative_url(target, page) + (f'#{frag}' if frag else '')
        return f'{m.group(1)}"{html.escape(new)}"'
    return re.sub(r'(<a\s[^>]*?href=)"([^"]*)"', repl, body)


WEB_PAGE = 'in_browser'   # the folder of the in-browser page in the site
WEB_PLACEHOLDER = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mask an image in the browser</title></head>
<body><h1>Mask an image in the browser</h1><p>This copy of the docs was built without Node.js, so the page that masks
images in the browser is not here. Install Node.js with npm and run <code>python tools/build_docs.py</code> again.
<a href="../index.html">Back to the docs</a></p></body></html>
"""


def build_web_page(dest:Path):
    "The page that masks images in the browser, built by web/build.py into `dest`; without npm a placeholder (an error in CI)."
    import importlib.util
    spec = importlib.util.spec_from_file_location('maskgen_web_build', ROOT / 'web' / 'build.py')
    web = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(web)
    if not web.npm_packages_current() and not shutil.which('npm'):
        msg = "Node.js with npm is not installed, so the in-browser page (web/) cannot be built: apt-get install nodejs npm"
        if os.environ.get('CI') == 'true': sys.exit(msg)
        print(f"WARNING: {msg}; writing a placeholder at {WEB_PAGE}/index.html")
        dest.mkdir(parents=True)
        (dest / 'index.html').write_text(WEB_PLACEHOLDER)
        return
    web.build(dest)


def build(nbs:Path, dest:Path, n_workers:int=2, force:bool=False)->list:
    "Process the notebooks in `nbs` and write the HTML site to `dest`; returns the pages."
    import jinja2
    from nbconvert import HTMLExporter
    from nbdev.config import get_config
    cfg = get_config()
    t0 = time.time()
    sources = source_notebooks(nbs)
    if not sources: sys.exit(f"no notebooks under {nbs}")
    proc = process_notebooks(nbs, n_workers, force)
    t_proc = time.time() - t0

    pages = []
    for rel in sources:
        nb, fm = prepare_notebook(proc / rel)
        out = fm.get('output-file') or re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.name.lower())
        out = str(rel.parent / Path(out).with_suffix('.html').name).replace(os.sep, '/').removeprefix('./')
        pages.append(dict(page=out, source=str(rel).replace(os.sep, '/'), title=str(fm.get('title') or rel.stem),
                          description=str(fm.get('description') or ''), images=n_image_outputs(nb), nb=nb))
    dups = {p['page'] for p in pages if sum(q['page'] == p['page'] for q in pages) > 1}
    if dups: sys.exit(f"two notebooks give the same page {sorted(dups)}: give one an `output-file` in its front matter")
    top = lambda p: (PurePosixPath(p['page']).parent != PurePosixPath('.'), p['page'] != 'index.html', p['source'])
    pages.sort(key=top)
    out_of = {p['source']: p['page'] for p in pages}
    site_url = (cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/') + '/' if cfg.get('doc_host') else ''

    exporter = HTMLExporter(template_name='lab', extra_loaders=[jinja2.DictLoader({'maskgen_docs.html.j2': TEMPLATE})],
                            template_file='maskgen_docs.html.j2', exclude_input_prompt=True, exclude_output_prompt=True)
    dest, tmp = Path(dest).resolve(), None
    if dest.exists() and dest != cfg.doc_path and not (dest / 'pages.json').exists():
        sys.exit(f"{dest} exists and was not built by this tool (no pages.json): pick another --dest")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{dest.name}.', dir=dest.parent))   # built aside, then swapped in
    try:
        for f in proc.rglob('*'):                   # images and other files the pages refer to
            rel = f.relative_to(proc)
            if f.is_file() and f.suffix != '.ipynb' and f.name != SOURCE_STAMP and not rel.name.startswith('_'):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, tmp / rel)
        for p in pages:
            nb = p.pop('nb')
            nb.metadata['title'] = p['title']
            res = {'sidebar': sidebar_html(pages, p['page'], cfg.get('title', 'docs')), 'page': p,
                   'metadata': {'name': p['title'], 'path': str(proc / PurePosixPath(p['source']).parent)}}
            body, _ = exporter.from_notebook_node(nb, resources=res)
            target = tmp / p['page']
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(fix_links(body, p['page'], out_of, site_url), encoding='utf-8')
        build_web_page(tmp / WEB_PAGE)
        (tmp / 'pages.json').write_text(json.dumps(pages, indent=1) + '\n')
        old = None
        if dest.exists(): old = dest.rename(dest.with_name(f'.{dest.name}.old.{os.getpid()}'))
        os.replace(tmp, dest)
        if old: shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists(): shutil.rmtree(tmp, ignore_errors=True)
    print(f"built {len(pages)} pages into {dest} in {time.time() - t0:.1f} s "
          f"(nbdev processing {t_proc:.1f} s, HTML {time.time() - t0 - t_proc:.1f} s)")
    return pages


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--nbs', type=Path, default=None, help="folder of notebooks (default: settings.ini's nbs_path, nbs/)")
    ap.add_argument('--dest', type=Path, default=None, help="where to write the site (default: settings.ini's doc_path, _docs/)")
    ap.add_argument('--n_workers', type=int, default=2, help="processes for nbdev's processing (default 2)")
    ap.add_argument('--force', action='store_true', help="process every notebook again, ignoring the _proc/ cache")
    args = ap.parse_args(argv)
    nbs, dest = [p.resolve() if p else None for p in (args.nbs, args.dest)]
    os.environ.setdefault('MPLBACKEND', 'Agg')
    os.chdir(ROOT)                                   # nbdev finds settings.ini from the working directory
    from nbdev.config import get_config
    cfg = get_config()
    nbs = nbs or cfg.nbs_path
    if not nbs.is_dir(): sys.exit(f"no notebook folder {nbs}")
    build(nbs, dest or cfg.doc_path, args.n_workers, args.force)


if __name__ == '__main__': main()
