"""Load benchmarks of edge (wrk); see bench/README.md."""
