"""The live Linux sensor: bpftrace on tracepoints, attributed to containers by cgroup."""
