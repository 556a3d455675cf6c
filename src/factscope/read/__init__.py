"""Reading a model without running it: what its parameters are and where they sit."""
