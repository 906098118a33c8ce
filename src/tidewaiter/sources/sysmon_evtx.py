"""sysmon_evtx source (being written)."""
