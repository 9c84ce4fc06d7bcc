"""edgecls.runtime: the torch-free classifier (not built yet)."""
