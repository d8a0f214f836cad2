"""Example declarations that `bpfschema gen` consumes (see examples/ for apps that use the generated modules)."""
