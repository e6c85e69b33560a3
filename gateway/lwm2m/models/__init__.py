"""Bundled LwM2M object definitions (OMA DDF XML, one object per file).

A package only so ``importlib.resources`` finds the files when installed as a wheel.
"""
