"""`syncd run` and what it reports: start-up checks, one pipeline per source, the daemon around
them (signals, reloads, notify, metrics), and the status read back from the state schema."""
