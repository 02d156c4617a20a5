"""The firmware image: building it, and reading its ELF (build-id, sections, symbols) and DWARF."""
