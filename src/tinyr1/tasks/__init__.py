"""What is learned and how it is scored: prompts and data, the one definition of a right answer, rewards."""
