package main

// cmdImage is a placeholder until its issue lands.
func cmdImage(e *env, args []string) error { return notYet("gate image") }
