"""Coded examples: the store of an office's coded history and review answers
(:mod:`autocoder.examples.store`, :mod:`autocoder.examples.ops`), and the small example input
shipped with the package (``vacancies.csv``, used by ``autocoder quickstart``)."""
