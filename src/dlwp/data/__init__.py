"""Data modules, one per book dataset; all in-memory ones share `InMemoryDataModule`."""
