"""Parts of bench/ingest.py (a package, so that `make bench` does not run them as benchmarks)."""
