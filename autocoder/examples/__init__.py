"""Small example inputs shipped with the package (used by ``autocoder quickstart``)."""
