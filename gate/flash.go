package main

// cmdFlash is a placeholder until its issue lands.
func cmdFlash(e *env, args []string) error { return notYet("gate flash") }
