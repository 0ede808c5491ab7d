"""Storage: one port (`Store`), one adapter per backend. SQL lives only below this package."""
