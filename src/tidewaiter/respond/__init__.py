"""Response: plan the containment of a finding (pure), then, only when asked, execute it through
the runtime's API (Docker or Podman) or the Kubernetes API, with every action audited."""
