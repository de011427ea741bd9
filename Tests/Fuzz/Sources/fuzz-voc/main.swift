import FuzzHarnesses

Fuzzing.run(VOCHarness.run)
