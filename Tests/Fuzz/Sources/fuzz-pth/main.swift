import FuzzHarnesses

Fuzzing.run(TorchHarness.run)
