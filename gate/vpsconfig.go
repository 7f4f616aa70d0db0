package main

// cmdVPSConfig is a placeholder until its issue lands.
func cmdVPSConfig(e *env, args []string) error { return notYet("gate vpsconfig") }
