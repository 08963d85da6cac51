"""Runnable experiments that check the paper's claims (see docs/validation.md).

Each module has ``run(...) -> dict``, which computes the numbers for given
sizes and seeds (and, given ``out_dir``, writes ``results.json``,
``figure.png`` and the data as pair files the app opens), and ``main()``, the
command line: ``python -m examples.<name> --out examples/_out/<name>``.
"""
