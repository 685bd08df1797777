"""The documentation and the public surface: the README's and the site's examples run,
the names users import, the package as built."""
