"""Developer tools: building small AArch64 programs for tests and benchmarks."""
