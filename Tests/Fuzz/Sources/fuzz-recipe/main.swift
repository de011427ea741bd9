import FuzzHarnesses

Fuzzing.run(RecipeHarness.run)
