"""Hardware tests: each boots fresh guests (fixtures come from harness.pytest_plugin)."""

pytest_plugins = ["pytester"]
