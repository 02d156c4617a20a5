"""Tools around a booted guest that are not protocol verbs: the ``:`` harness commands
(``commands``), the line filter in front of them (``lines``), the host oracles run together
(``verify``), and the reliability tools (``inject``, ``fuzz``)."""
