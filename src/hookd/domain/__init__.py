"""Records, identifiers, states and errors: the vocabulary of hookd, with no I/O."""
