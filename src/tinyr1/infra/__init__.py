"""The run infrastructure the commands share: recipes, validation, run folders, models, precision, guards."""
