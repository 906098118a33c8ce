"""The command line: one module per subcommand; this package only wires them."""
