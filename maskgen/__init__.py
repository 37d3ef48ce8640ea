__version__ = "0.1.0"

__all__ = ['MaskGenerator', 'download_weights']

_LAZY = {'MaskGenerator': 'maskgen.generator', 'download_weights': 'maskgen.hub'}   # name -> module that defines it


def __getattr__(name):
    "Import `MaskGenerator` (and torch) or `download_weights` only when first used, so `import maskgen` stays light."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskgen' has no attribute {name!r}")


def __dir__(): return sorted([*globals(), *_LAZY])
