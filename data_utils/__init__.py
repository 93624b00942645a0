"""Offline data preparation: writes the contract folders of DESIGN.md §3 (training reads only those)."""
