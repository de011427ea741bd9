import FuzzHarnesses

Fuzzing.run(SafeTensorsHarness.run)
