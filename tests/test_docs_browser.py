"""The offline docs site in a real Chromium: build it with tools/build_docs.py, serve it on 127.0.0.1, open every page and
check it has its title, shows no Python traceback, loads nothing from the internet, has no broken image, shows a rendered
image wherever its notebook stored an image output, and that every sidebar link, and every link of a page's text to
another page of the site (tutorials to each other, the index to the tutorials), answers 200.

Needs Debian's Chromium at /usr/bin/chromium (`apt-get install chromium`) and `pip install -e '.[dev]'` (nbconvert,
playwright); Playwright's own browser downloads are not used. Run it with `pytest -m browser tests/test_docs_browser.py`.
With MASKGEN_DOCS_DIR=_docs it checks a site already built (e.g. by `python tools/build_docs.py` earlier in the same CI
job) instead of building one under the test's tmp folder. The index page's screenshot is saved as `index.png` there.
"""
import functools, json, os, subprocess, sys, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin
import urllib.request
import pytest
from conftest import ROOT

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
TRACEBACK = 'Traceback (most recent call last)'

pytestmark = pytest.mark.browser


def docs_site(tmp_path:Path)->Path:
    "The site to check: MASKGEN_DOCS_DIR if set, else a fresh build of nbs/ into `tmp_path`/site."
    if os.environ.get('MASKGEN_DOCS_DIR'):
        site = (ROOT / os.environ['MASKGEN_DOCS_DIR']).resolve()
        assert (site / 'pages.json').exists(), f"MASKGEN_DOCS_DIR={site} has no pages.json: run python tools/build_docs.py"
        return site
    site = tmp_path / 'site'
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--dest', str(site)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, f"tools/build_docs.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return site


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError): super().handle_error(request, client_address)   # Chromium hangs up early


def serve(folder:Path):
    "An HTTP server for `folder` on 127.0.0.1 and a free port, in a thread: (server, thread, base url)."
    server = QuietServer(('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True)
    thread.start()
    return server, thread, f'http://127.0.0.1:{server.server_address[1]}/'


def status_of(url:str)->int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r: return r.status
    except urllib.error.HTTPError as e: return e.code


IMAGES_JS = """() => Array.from(document.images).map(i => ({src: i.src.slice(0, 80), complete: i.complete, width: i.naturalWidth}))"""
SIDEBAR_JS = """() => Array.from(document.querySelectorAll('nav.docs-sidebar a')).map(a => a.href)"""
BODY_LINKS_JS = """() => Array.from(document.querySelectorAll('main.docs-page a[href]')).map(a => a.href)"""


def test_docs_pages_in_chromium(tmp_path):
    if not CHROMIUM.exists(): pytest.skip("Debian's Chromium is not at /usr/bin/chromium: apt-get install chromium")
    pytest.importorskip('playwright.sync_api', reason="playwright is not installed: pip install -e '.[dev]'")
    pytest.importorskip('nbconvert', reason="nbconvert is not installed: pip install -e '.[dev]'")
    from playwright.sync_api import sync_playwright

    t0 = time.time()
    site = docs_site(tmp_path)
    t_build = time.time() - t0
    pages = json.loads((site / 'pages.json').read_text())
    assert any(p['page'] == 'index.html' for p in pages), [p['page'] for p in pages]
    server, thread, base = serve(site)
    problems, external, links, body_links = [], [], set(), {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                context = browser.new_context(viewport={'width': 1280, 'height': 900})
                def only_local(route):   # the offline site must not need the internet: record and refuse
                    if route.request.url.startswith(base) or route.request.url.startswith('data:'): route.continue_()
                    else: external.append(route.request.url); route.abort()
                context.route('**/*', only_local)
                page = context.new_page()
                for p in pages:
                    url = urljoin(base, p['page'])
                    resp = page.goto(url, wait_until='load', timeout=30_000)
                    where = f"{p['page']} (from {p['source']})"
                    if resp is None or resp.status != 200:
                        problems.append(f"{where}: HTTP {resp and resp.status}"); continue
                    if page.title() != p['title']: problems.append(f"{where}: <title> is {page.title()!r}, not {p['title']!r}")
                    h1 = page.locator('main h1.title')
                    if h1.count() != 1 or h1.inner_text().strip() != p['title']:
                        problems.append(f"{where}: no <h1> with the title {p['title']!r}")
                    text = page.locator('body').inner_text()
                    if TRACEBACK in text:
                        at = text.index(TRACEBACK)
                        problems.append(f"{where}: shows a Python traceback:\n{text[max(0, at - 200):at + 600]}")
                    imgs = page.evaluate(IMAGES_JS)
                    broken = [i['src'] for i in imgs if i['complete'] and i['width'] == 0]
                    if broken: problems.append(f"{where}: broken images {broken}")
                    if p['images'] and not any(i['width'] > 0 for i in imgs):
                        problems.append(f"{where}: the notebook has {p['images']} image outputs but no image renders")
                    hrefs = page.evaluate(SIDEBAR_JS)
                    if len(hrefs) < len(pages): problems.append(f"{where}: the sidebar has {len(hrefs)} links for {len(pages)} pages")
                    links.update(h.split('#')[0] for h in hrefs)
                    for h in page.evaluate(BODY_LINKS_JS):
                        if h.startswith(base): body_links.setdefault(h.split('#')[0], p['page'])
                    if p['page'] == 'index.html': page.screenshot(path=str(tmp_path / 'index.png'), full_page=False)
            finally:
                browser.close()
        for link in sorted(links):
            if not link.startswith(base): problems.append(f"sidebar link {link} leaves the site")
            elif (code := status_of(link)) != 200: problems.append(f"sidebar link {link} answers HTTP {code}")
        for link, where in sorted(body_links.items()):
            if link not in links and (code := status_of(link)) != 200: problems.append(f"{where}: link {link} answers HTTP {code}")
    finally:
        server.shutdown(); server.server_close(); thread.join(timeout=10)
    assert not thread.is_alive()
    if external: problems.append(f"pages asked for {len(set(external))} resources outside the site: {sorted(set(external))[:10]}")
    assert not problems, '\n'.join(problems)
    assert links >= {urljoin(base, p['page']) for p in pages}, "some pages are missing from the sidebar"
    assert (tmp_path / 'index.png').stat().st_size > 0
    print(f"{len(pages)} pages checked in {time.time() - t0:.1f} s (build {t_build:.1f} s); screenshot {tmp_path / 'index.png'}")
