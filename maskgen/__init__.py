__version__ = "0.1.0"

__all__ = ['MaskGenerator']


def __getattr__(name):
    "Import `MaskGenerator` (and torch) only when it is first used, so `import maskgen` stays light."
    if name == 'MaskGenerator':
        from .generator import MaskGenerator
        return MaskGenerator
    raise AttributeError(f"module 'maskgen' has no attribute {name!r}")
