package main

// cmdUpdate is a placeholder until its issue lands.
func cmdUpdate(e *env, args []string) error { return notYet("gate update") }
