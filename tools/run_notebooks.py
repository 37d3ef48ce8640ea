"""Execute notebooks in place and save their outputs (text, tables, matplotlib figures as PNG) in the .ipynb, as an nbdev
developer does with "Restart and run all" in Jupyter, so the docs show real outputs.

Cells run in execnb's `CaptureShell` (inline matplotlib, so figures become `image/png` outputs), one fresh interpreter per
notebook, with the notebook's folder as the working directory. As `nbdev_test` does, it skips cells flagged with a test flag
from settings.ini's `tst_flags` (`#| slow`, `#| browser`, `#| fiftyone`, `#| cuda`) unless `--flags` asks for it, cells with
`#| eval: false`, `nbdev_export()` cells, and whole notebooks whose front matter says `skip_exec: true`. Skipped cells keep
the outputs they had. A notebook whose cell raises is left as it was (nothing is written) and the run exits 1.
Each notebook is written to a temporary file beside it, then moved over it.

    python tools/run_notebooks.py                                 # every notebook under nbs/ (not _proc)
    python tools/run_notebooks.py nbs/01_io.ipynb nbs/02_model.ipynb
    python tools/run_notebooks.py --flags "slow cuda" nbs/15_train.ipynb
    nbdev_clean                                                   # then: keeps outputs, drops execution counts and metadata
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_notebooks(folder:Path)->list:
    "Every .ipynb under `folder`, skipping `_proc`, checkpoints and hidden or `_`-prefixed folders."
    return sorted(p for p in Path(folder).rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(folder).parts))


def test_flags()->set:
    "The flags settings.ini's `tst_flags` lists (cells marked with them are skipped unless asked for)."
    from nbdev.config import get_config
    return set(get_config().get('tst_flags', '').replace('|', ' ').split())


def notebook_frontmatter(path:Path)->dict:
    "Front matter of the notebook at `path`: a YAML raw cell, or the H1 / `>` summary / `- key: value` first markdown cell."
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    return getattr(NBProcessor(path, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {})


def cell_skipper(skip_flags:set):
    "A `preproc` for `CaptureShell.run_all`: True for cells not to run; clears the outputs of the cells that will run."
    from nbdev.process import extract_directives
    def skip(cell)->bool:
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        direc = extract_directives(cell, remove=False)   # leaves cell.source as it is
        if direc.get('eval:', [''])[0].lower() == 'false': return True
        if skip_flags & direc.keys(): return True
        cell.outputs = []   # CaptureShell only replaces outputs when there are new ones
        return False
    return skip


def run_notebook(path:Path, flags:str='', timeout:int=None)->bool:
    "Execute the notebook at `path` in this process and write it back with its outputs; False if a cell raised."
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from fastcore.basics import str2bool
    path = Path(path).resolve()
    fm = notebook_frontmatter(path)
    if str2bool(fm.get('skip_exec', False)):
        print(f"{path.name}: skip_exec: true, not run")
        return True
    nb = read_nb(path)
    skip_flags = test_flags() - set(flags.split())
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    shell = CaptureShell(path, timeout=timeout)       # enables `%matplotlib inline` (retina PNG) when matplotlib-inline is there
    shell.run_cell('%matplotlib inline')
    t0 = time.time()
    try:
        with working_directory(path.parent): shell.run_all(nb, exc_stop=True, preproc=cell_skipper(skip_flags))
    except BaseException:
        sys.stderr.write(shell.prettytb(fname=path) + '\n')
        return False
    fd, tmp = tempfile.mkstemp(suffix='.ipynb', prefix=f'.{path.stem}.', dir=path.parent)
    os.close(fd)
    try:
        write_nb(nb, tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777)   # mkstemp makes it 0600; keep the notebook's own mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp): os.unlink(tmp)
    n_out = sum(len(c.get('outputs', [])) for c in nb.cells if c.cell_type == 'code')
    print(f"{path.name}: ran in {time.time() - t0:.1f} s, {n_out} outputs")
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='*', type=Path, help="notebooks to run (default: every notebook under nbs/, not _proc)")
    ap.add_argument('--flags', default='', help="space separated test flags whose cells should run, e.g. 'slow cuda'")
    ap.add_argument('--timeout', type=int, default=None, help="seconds a cell may run before it is stopped (default: no limit)")
    ap.add_argument('--in_process', action='store_true',
                    help="run the notebooks in this interpreter (default: a fresh interpreter per notebook)")
    args = ap.parse_args(argv)
    os.environ.setdefault('MPLBACKEND', 'Agg')   # the inline backend replaces it inside CaptureShell; Agg for anything else
    nbs = args.notebooks or find_notebooks(ROOT / 'nbs')
    missing = [str(p) for p in nbs if not Path(p).is_file()]
    if missing: sys.exit(f"no such notebook: {', '.join(missing)}")
    failed, t0 = [], time.time()
    for nb in nbs:
        if args.in_process: ok = run_notebook(nb, args.flags, args.timeout)
        else:
            cmd = [sys.executable, __file__, '--in_process', '--flags', args.flags, str(nb)]
            if args.timeout: cmd += ['--timeout', str(args.timeout)]
            ok = subprocess.run(cmd).returncode == 0
        if not ok: failed.append(str(nb))
    if len(nbs) > 1: print(f"ran {len(nbs) - len(failed)} of {len(nbs)} notebooks in {time.time() - t0:.1f} s")
    if failed: sys.exit(1 if args.in_process and len(nbs) == 1 else "failed (left unchanged): " + ', '.join(failed))


if __name__ == '__main__': main()
