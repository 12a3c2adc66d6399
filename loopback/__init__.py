"""Real deployments on loopback, started from packages: what the slow tests, the
benchmarks and ``make cluster`` run against."""
