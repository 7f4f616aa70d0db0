package main

// cmdReimage is a placeholder until its issue lands.
func cmdReimage(e *env, args []string) error { return notYet("gate reimage") }
