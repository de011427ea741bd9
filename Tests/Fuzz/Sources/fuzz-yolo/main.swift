import FuzzHarnesses

Fuzzing.run(YOLOHarness.run)
