package main

// cmdHosts is a placeholder until its issue lands.
func cmdHosts(e *env, args []string) error { return notYet("gate hosts") }
