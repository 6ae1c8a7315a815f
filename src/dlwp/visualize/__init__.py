"""Seeing inside networks (book 5.4, 8.2, 8.3): procedures that inspect or optimise images, not weights.

Each is a function on tensors (tested on tiny networks) plus a command that gives it a run
directory, a run record and PNGs (`dlwp visualize activations|filters|gradcam`, `dlwp dream`,
`dlwp style`). Modules: `images` (loading, grids, overlays), `layers` (named layers and hooks),
`session` (run directory, record, W&B), then one module per procedure.
"""
