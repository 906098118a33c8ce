"""sysmon_xml source (being written)."""
