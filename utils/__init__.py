"""Small shared helpers: FLAME vector layout, configs, atomic outputs, checkpoints, logs, plots."""
