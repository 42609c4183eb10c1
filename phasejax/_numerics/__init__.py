"""Shared numerics, one copy each (private: import the submodules directly)."""
