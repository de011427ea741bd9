import FuzzHarnesses

Fuzzing.run { ImageHarness.run($0, fileExtension: "png") }
