"""Tools for developing syncd, outside the installed package: throwaway servers for the tests, the
demo and the benchmarks (`devtools.sandbox`)."""
