"""CLI subcommands that live next to their feature; each module has register(sub)."""
